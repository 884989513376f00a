"""The `rader` command: every user-facing job is a subcommand here.

Errors a user can cause print one line (no traceback) and exit 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rader.app.cli_agent import register as register_agent_commands
from rader.app.cli_bench import register as register_bench_commands
from rader.app.cli_options import HeldOutByOpt, HeldOutFractionOpt, JsonOpt, held_out_from, settings_for
from rader.app.cli_serve import register as register_serve_command
from rader.app.cli_training import register as register_training_commands
from rader.app.cli_ui import register as register_ui_command
from rader.app.settings import config_path, flatten, load_settings
from rader.app.terminal import console, err_console, plain, print_json
from rader.app.wiring import corpus_from_settings, retriever_from_settings
from rader.retriever import RETRIEVER_NAMES, RaderError

app = typer.Typer(
    name="rader",
    help="rader: retrieval-augmented math reasoning with reasoning-aware dense retrievers.\n\n"
    "Solve problems with a retrieval-augmented agent (solve, ui), search theorem corpora with BM25, "
    "a dense encoder or both fused (search, index, corpus), evaluate retrievers (eval), harvest "
    "trajectories and train a retriever on them (harvest, dataset, train, models register), and "
    "manage models, trajectories and settings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show the settings in force and where each came from.",
                         no_args_is_help=True)
corpus_app = typer.Typer(help="Add, list and inspect theorem corpora.", no_args_is_help=True)
index_app = typer.Typer(help="Build the search indexes for the corpora in force.",
                        no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(corpus_app, name="corpus")
app.add_typer(index_app, name="index")


RetrieverOpt = Annotated[str | None, typer.Option(
    "--retriever", "-r", help=f"one of {', '.join(RETRIEVER_NAMES)} (default: settings)")]
CorpusOpt = Annotated[list[str] | None, typer.Option(
    "--corpus", "-c", help="corpus name (repeat to merge); default: settings `corpora`")]
EncoderOpt = Annotated[str | None, typer.Option(
    "--encoder", help="dense encoder: built-in name, model folder, or cached hub id")]


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"rader {version('rader')}")
        raise typer.Exit


@app.callback()
def _global(
    ctx: typer.Context,
    _version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                           help="print rader's version and exit")] = False,
    home: Annotated[Path | None, typer.Option(help="data directory (default ~/.rader)")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="hide progress bars")] = False,
) -> None:
    ctx.obj = {"cli": {"home": home, "show_progress": False if no_progress else None},
               "config": config if config is not None else "auto"}


# -- config --------------------------------------------------------------------------------
@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: JsonOpt = False,
) -> None:
    """Print every setting, its value, and where it came from (default, file, env, cli)."""
    cli = dict(ctx.obj["cli"])
    settings, origins = load_settings(cli, config_file=ctx.obj["config"])
    flat = flatten(settings.model_dump(mode="json"))
    if as_json:
        print_json({k: {"value": v, "origin": origins[k]} for k, v in flat.items()})
        return
    path = config_path(ctx.obj["config"])
    table = Table(title=f"rader settings (file: {path if path and path.is_file() else 'none'})")
    for column in ("setting", "value", "origin"):
        table.add_column(column)
    for key, value in flat.items():
        table.add_row(key, json.dumps(value), origins[key])
    console.print(table)
    console.print("Override with RADER_<KEY> (nested: RADER_RETRIEVER__K=5) or the TOML file.")


# -- corpus --------------------------------------------------------------------------------
@corpus_app.command("add")
def corpus_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(
        help="JSON Lines: id,title,text,source,tags or BEIR _id,title,text")],
    name: Annotated[str, typer.Option(help="name to register it under")],
    skip_bad_lines: Annotated[bool, typer.Option(
        help="skip malformed lines and report them (default: stop at the first)")] = False,
    kind: Annotated[str, typer.Option(
        help="theorems (id, title, text) or examples: solved problems (id, text, solution) shown "
        "to the agent as worked examples")] = "theorems",
) -> None:
    """Validate a corpus file and store it under a name."""
    from rader.retriever import CorpusStore

    settings = settings_for(ctx)
    report = CorpusStore(settings.home).add(file, name, errors="skip" if skip_bad_lines else "raise",
                                            kind=kind)
    console.print(plain("added corpus ").append(name, style="bold").append(f": {report.summary()}"))
    for rejected in report.rejected[:20]:
        console.print(f"  line {rejected.line}: {rejected.reason}")
    if len(report.rejected) > 20:
        console.print(f"  ... and {len(report.rejected) - 20} more")
    if kind == "examples":
        console.print(f"use it with RADER_EXAMPLE_CORPORA='[\"math-train\",\"{name}\"]'")
    else:
        console.print(f"use it with `--corpus {name}` or RADER_CORPORA='[\"builtin\",\"{name}\"]'")


@corpus_app.command("list")
def corpus_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the built-in corpus and every added one."""
    from rader.retriever import CorpusStore

    settings = settings_for(ctx)
    in_force = {*settings.corpora, *settings.example_corpora}
    rows = [{"name": info.name, "kind": info.kind, "entries": info.size, "hash": info.content_hash,
             "source": info.source, "in_use": info.name in in_force}
            for info in CorpusStore(settings.home).list()]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"corpora in {settings.home}")
    for column in ("name", "kind", "entries", "hash", "source", "in use"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["kind"], str(row["entries"]), row["hash"][:12], row["source"],
                      "yes" if row["in_use"] else "")
    console.print(table)


@corpus_app.command("show")
def corpus_show(
    ctx: typer.Context,
    theorem_id: Annotated[str, typer.Argument(help="theorem id, e.g. rader/algebra/vieta_quadratic")],
    corpus: CorpusOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print one theorem of the corpora in force."""
    settings = settings_for(ctx, corpora=corpus)
    theorem = corpus_from_settings(settings).get(theorem_id)
    if as_json:
        print_json(theorem.to_dict())
        return
    console.print(plain(theorem.title, style="bold").append(plain(f"  ({theorem.id})")))
    console.print(theorem.text)
    details = [f"source: {theorem.source}"]
    if theorem.subject:
        details.append(f"subject: {theorem.subject}")
    if theorem.tags:
        details.append("tags: " + ", ".join(theorem.tags))
    console.print(plain(" | ".join(details), style="dim"))


# -- index ---------------------------------------------------------------------------------
@index_app.command("build")
def index_build(
    ctx: typer.Context,
    retriever: RetrieverOpt = None,
    corpus: CorpusOpt = None,
    encoder: EncoderOpt = None,
    index_type: Annotated[str | None, typer.Option(help="faiss index: flat, hnsw or ivf")] = None,
    force: Annotated[bool, typer.Option(help="rebuild even if a valid index exists")] = False,
) -> None:
    """Build (or check) the indexes a retriever needs; hybrid builds both."""
    from rader.retriever import IndexStore, load_encoder

    settings = settings_for(ctx, corpora=corpus, retriever_kind=retriever, retriever_encoder=encoder,
                         retriever_index_type=index_type)
    kind = settings.retriever.kind
    docs = corpus_from_settings(settings)
    store = IndexStore(settings.home)
    options = settings.retriever.options(settings.home)
    started = time.perf_counter()
    if kind in ("bm25", "hybrid"):
        if force or store.load_bm25(docs) is None:  # a stale index raises with the fix
            store.build_bm25(docs, show_progress=settings.show_progress)
        console.print(f"bm25 index ready: {store.folder(docs, 'bm25')}")
    if kind in ("dense", "hybrid"):
        model = load_encoder(options.encoder, batch_size=options.batch_size)
        if force or store.load_dense(docs, model) is None:
            store.build_dense(docs, model, index_type=options.index_type,
                              show_progress=settings.show_progress)
        console.print(f"dense index ready: {store.folder(docs, 'dense', model)}")
    console.print(f"{len(docs)} theorems, {time.perf_counter() - started:.1f} s")


# -- search --------------------------------------------------------------------------------
@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="what to look for: words, LaTeX, a reasoning step")],
    retriever: RetrieverOpt = None,
    k: Annotated[int | None, typer.Option("-k", help="number of hits")] = None,
    kind: Annotated[str, typer.Option(
        help="query kind: problem, llm_query, cot_step, lexical")] = "problem",
    corpus: CorpusOpt = None,
    encoder: EncoderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rank theorems for a query (indexes are built on first use)."""
    from rader.retriever import QUERY_KINDS, Query

    if kind not in QUERY_KINDS:
        raise RaderError(f"unknown query kind {kind!r}; choose one of {', '.join(QUERY_KINDS)}")
    settings = settings_for(ctx, corpora=corpus, retriever_kind=retriever, retriever_k=k,
                         retriever_encoder=encoder)
    engine = retriever_from_settings(settings)
    started = time.perf_counter()
    hits = engine.search(Query(query, kind), k=settings.retriever.k)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if as_json:
        rows = [{**hit.to_dict(), "theorem": engine.theorem(hit.theorem_id).to_dict()} for hit in hits]
        print_json({"query": query, "kind": kind, "retriever": engine.name, "ms": round(elapsed_ms, 1),
                    "hits": rows})
        return
    table = Table(title=f"{engine.name} on {engine.corpus.name} ({len(engine.corpus)} theorems)")
    for column in ("#", "score", "id", "title", "statement"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        theorem = engine.theorem(hit.theorem_id)
        text = theorem.text if len(theorem.text) <= 160 else theorem.text[:157] + "..."
        table.add_row(str(hit.rank), f"{hit.score:.3f}", theorem.id, theorem.title, text)
    console.print(table)
    console.print(f"{len(hits)} hits in {elapsed_ms:.0f} ms")


# -- eval ----------------------------------------------------------------------------------
@app.command("eval")
def eval_command(
    ctx: typer.Context,
    corpus: Annotated[str, typer.Option(help="corpus file (JSON Lines / BEIR) or a corpus name")],
    queries: Annotated[Path, typer.Option(help="queries JSON Lines (BEIR, or BRIGHT-style with gold_ids)")],
    qrels: Annotated[Path | None, typer.Option(help="qrels: BEIR tsv, TREC, or JSON Lines")] = None,
    gold_field: Annotated[str | None, typer.Option(
        help="field of the queries file that holds gold ids (BRIGHT-style, without --qrels)")] = None,
    retrievers: Annotated[str, typer.Option(
        help="comma-separated: bm25,dense,hybrid; KIND@ENCODER picks an encoder per entry, e.g. "
        "dense,dense@raderv1 compares the base with a fine-tuned encoder")] = "bm25,dense,hybrid",
    query_kind: Annotated[str | None, typer.Option(help="treat every query as this kind")] = None,
    encoder: EncoderOpt = None,
    out: Annotated[Path | None, typer.Option(help="also write the results as JSON here")] = None,
    held_out_by: HeldOutByOpt = None,
    held_out_fraction: HeldOutFractionOpt = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 per retriever and query kind, in one table.

    Column p tests each retriever's nDCG@10 against the first one's on the same queries (a paired
    randomization test), so a gain can be told from noise.
    """
    from rader.app.evalrun import run_eval

    settings = settings_for(ctx, retriever_encoder=encoder)
    names = [n.strip() for n in retrievers.split(",") if n.strip()]
    result = run_eval(settings, corpus=corpus, queries=queries, qrels=qrels, gold_field=gold_field,
                      retrievers=names, query_kind=query_kind,
                      held_out=held_out_from(held_out_by, held_out_fraction))
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(result.table(), highlight=False)
        console.print(result.settings_line(), highlight=False, markup=False)
    if out is not None:
        out.write_text(json.dumps(result.to_dict(), indent=2))
        err_console.print(f"wrote {out}")


register_agent_commands(app)
register_bench_commands(app)
register_training_commands(app, settings_for)
register_ui_command(app, settings_for)
register_serve_command(app, settings_for)


def _readable(argv: list[str]) -> list[str]:
    """Arguments with bytes that were not UTF-8 (Python keeps them as lone surrogates, which
    no tokenizer, encoder or database takes) replaced by U+FFFD, with a warning."""
    fixed = [arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for arg in argv]
    for number, (arg, clean) in enumerate(zip(argv, fixed, strict=True), start=1):
        if arg != clean:
            err_console.print(plain(f"warning: argument {number} is not valid UTF-8; "
                                    f"its bad bytes became U+FFFD: {clean[:80]}", style="yellow"))
    return fixed


def _fail(message: object) -> None:
    err_console.print(plain("error: ", style="bold red").append(plain(message)), soft_wrap=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a `RaderError` (or a file the system refuses) becomes one line on stderr and
    exit status 2."""
    try:
        app(args=_readable(sys.argv[1:] if argv is None else argv), prog_name="rader")
    except RaderError as err:
        _fail(err)
    except OSError as err:  # a folder that is a file, no permission, no room: not a bug of rader's
        where = f" ({err.filename})" if err.filename else ""
        _fail(f"{err.strerror or err}{where}: check --home / RADER_HOME, permissions and free space")
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
