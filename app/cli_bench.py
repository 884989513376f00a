"""`rader bench judge` and `rader bench agent`: the judge and the whole agent, measured."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rader.app.cli_options import (
    HeldOutByOpt,
    HeldOutFractionOpt,
    JsonOpt,
    ModelOpt,
    held_out_from,
    parse_levels,
    settings_for,
)
from rader.app.terminal import console, counting_bar, download_progress, exit_failed, print_json
from rader.app.wiring import agent_name
from rader.retriever import RaderError, held_out_rows

bench_app = typer.Typer(help="Measure the relevance judge and the agent.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the bench group to the `rader` app."""
    app.add_typer(bench_app, name="bench")


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
        with counting_bar("judging", len(pairs), settings.show_progress) as advance:
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
        progress, on_bytes = download_progress(settings.show_progress)
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
        "none (the agent, no retrieval), theorems, unsure (theorems only when the agent's answer without "
        "them is unsure), unsure-both (the same with worked examples too), unsure-none (the same gate, "
        "then sampled attempts without retrieval: what retrieval must beat), examples (worked examples), "
        "both, gold (the labelled theorem given; needs --qrels)")]
    = "bare,none,theorems,examples,both",
    retriever: Annotated[str, typer.Option(help="theorem retriever: bm25, dense or hybrid")] = "hybrid",
    examples_retriever: Annotated[str, typer.Option(help="worked-example retriever")] = "hybrid",
    qrels: Annotated[Path | None, typer.Option(help="problem -> theorem labels, for mode gold")] = None,
    model: ModelOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="runs at once (llama.cpp slots)")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="write the results as JSON (after every run), with the agent settings they ran under")] = None,
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
                          where=held_out_rows(held_out))
    excluded = {p.id for p in load_problems(problems, None, where=held_out.holds)} if held_out else set()
    excluded |= {p.id for p in items}
    store = store_from_settings(settings)
    graphs = _bench_modes(settings, chosen, retriever, examples_retriever, excluded, items, qrels)
    elsewhere = [r for r in done if (r["problem_id"], r["mode"]) not in planned(graphs, items)]
    agent_config = dataclasses.asdict(settings.agent.config())  # what the graphs ran under (gold: judge off)

    def save(found: list[dict]) -> None:  # after every run: a long benchmark cut short keeps it all
        if out:  # (and the earlier rows of other problems or modes stay in the file)
            summary = summarize_modes(found, chosen)
            out.write_text(json.dumps({"modes": summary, "rows": found + elsewhere,
                                       "agent": agent_config}, indent=1))

    description = f"{len(chosen)} modes x {len(items)} problems"
    with counting_bar(description, len(chosen) * len(items), settings.show_progress) as advance:
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
    with_theorem_modes = {"theorems", "unsure", "unsure-both", "both"}
    with_example_modes = {"examples", "both", "unsure-both"}
    theorems = retriever_from_settings(settings, kind=retriever) if wanted & with_theorem_modes else None
    solved = examples_from_settings(settings, examples, excluded) if wanted & with_example_modes else None
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
            with_theorems = theorems if mode in with_theorem_modes else None
            with_examples = solved if mode in with_example_modes else None
            when = "unsure" if mode.startswith("unsure") else config.retrieve_when
            graph = build_graph(base.llm, with_theorems, dataclasses.replace(config, retrieve_when=when),
                                examples=with_examples, aux_llm=base.aux_llm)
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

