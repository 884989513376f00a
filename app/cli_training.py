"""`rader harvest`, `rader dataset build`, `rader train`: the learning loop's commands."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rader.app.cli_options import HeldOutByOpt, HeldOutFractionOpt, JsonOpt, held_out_from, parse_levels
from rader.app.terminal import console, err_console, exit_failed, print_json
from rader.training.config import GradedLoss, InfoNCE, TrainConfig

TRAIN_DEFAULTS = TrainConfig()  # `rader train`'s defaults: each written once, in TrainConfig
dataset_app = typer.Typer(help="Turn stored trajectories into retriever training data.", no_args_is_help=True)


def _show(title: str, values: dict, as_json: bool) -> None:
    """A command's results: a table, or with ``--json`` the same values as JSON on stdout."""
    if as_json:
        print_json(values)
    else:
        console.print(_table(title, values))


def _table(title: str, values: dict) -> Table:
    table = Table(title=title)
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    return table


def query_writer(settings, model: str, cache: Path | None = None):
    """RaDeR's query writer on ``model`` (greedy, short replies), caching its replies in ``cache``
    (default HOME/generated_queries.jsonl)."""
    import dataclasses

    from rader.agent.llm import chat_model
    from rader.training.generate import QueryCache, QueryWriter

    config = dataclasses.replace(settings.llm.config(), model=model, temperature=0.0, max_tokens=96)
    return QueryWriter(chat_model(config, home=settings.home), model,
                       QueryCache(cache or settings.home / "generated_queries.jsonl"))


def register(app: typer.Typer, settings_for) -> None:
    app.add_typer(dataset_app, name="dataset")

    @app.command()
    def harvest(
        ctx: typer.Context,
        problems: Annotated[Path, typer.Option(help="JSON Lines problems with gold answers")],
        limit: Annotated[int | None, typer.Option(help="at most N problems")] = None,
        shuffle_seed: Annotated[int | None, typer.Option(help="draw the problems at random with this seed")]
        = None,
        levels: Annotated[str | None, typer.Option(help="only these difficulty levels, e.g. 1,2,3")] = None,
        samples: Annotated[int, typer.Option(min=1, help="trajectories per problem")] = 1,
        temperature: Annotated[float | None, typer.Option(
            help="sampling temperature (default: 0.7 with --samples > 1, else the settings')")] = None,
        seed: Annotated[int, typer.Option(help="sample k is seeded with seed + k")] = 0,
        concurrency: Annotated[int, typer.Option(
            min=1, help="runs at once (llama.cpp slots; on Ray, per worker: vLLM batches them)")] = 1,
        retriever: Annotated[str | None, typer.Option(help="bm25, dense or hybrid (default: settings)")]
        = None,
        model: Annotated[str | None, typer.Option(help="catalog name, .gguf path or model folder")] = None,
        ray: Annotated[str | None, typer.Option(
            help="run on Ray: 'local' starts it here, or a cluster address ('auto', ray://head:10001)")]
        = None,
        workers: Annotated[int, typer.Option(min=1, help="Ray actors (each loads the model)")] = 2,
        gpus_per_worker: Annotated[float, typer.Option(
            min=0, help="GPUs Ray reserves for each worker (1 on GPU nodes: one vLLM engine per GPU)")] = 0,
        held_out_by: HeldOutByOpt = None,
        held_out_fraction: HeldOutFractionOpt = 0.5,
        as_json: JsonOpt = False,
    ) -> None:
        """Run the agent over a problem set, K samples a problem; rerun to resume after a crash.

        Exits 1 (after its table) when some runs failed: they are stored with status error; 130
        (after its table) when Ctrl-C stopped it."""
        from rader.agent.problems import load_problems
        from rader.app.wiring import graphs_by_sample, store_from_settings
        from rader.training.harvest import HarvestSpec
        from rader.training.harvest import harvest as run_harvest

        llm = {"parallel": concurrency, **({"model": model} if model else {})}
        if temperature is not None or samples > 1:
            llm["temperature"] = 0.7 if temperature is None else temperature
        settings = settings_for(ctx, llm=llm)
        kind = retriever or settings.agent.retriever
        held_out = held_out_from(held_out_by, held_out_fraction)
        items = load_problems(problems, limit, shuffle_seed=shuffle_seed, levels=parse_levels(levels),
                              where=held_out and (lambda row: not held_out.holds(row)))
        store = store_from_settings(settings)
        spec = HarvestSpec(model=settings.llm.model, retriever=kind, samples=samples,
                           temperature=settings.llm.temperature, seed=seed)
        factory = functools.partial(graphs_by_sample, settings, kind, seed)
        columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), "eta", TimeRemainingColumn())
        with Progress(*columns, console=err_console, disable=not settings.show_progress) as bar:
            task = bar.add_task("harvest", total=len(items) * samples)

            def advance(trajectory) -> None:
                bar.advance(task)

            if ray:
                from rader.training.ray_harvest import harvest_on_ray

                summary = harvest_on_ray(items, factory, store=store, spec=spec, workers=workers,
                                         runs_per_worker=concurrency, gpus_per_worker=gpus_per_worker,
                                         address=ray, on_result=advance)
            else:
                summary = run_harvest(items, factory(), store=store, spec=spec, concurrency=concurrency,
                                      on_result=advance)
        values = {k: getattr(summary, k) for k in ("planned", "skipped", "ran", "done", "budget_exhausted",
                                                    "verified", "failed", "stopped")}
        values |= {"seconds": round(summary.seconds, 1), "runs/hour": round(summary.runs_per_hour, 1),
                   "store": str(store.path)}
        _show(f"harvest of {problems.name}: {spec.model}, retriever {kind}", values, as_json)
        if summary.stopped:
            err_console.print("stopped: rerun the same command to resume (finished runs are skipped)")
            raise typer.Exit(130)
        if summary.failed:
            exit_failed(f"{summary.failed} of {summary.ran} runs failed; see them with "
                        "`rader trajectories list --status error`")

    @dataset_app.command("build")
    def dataset_build(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option(help="output folder (replaced atomically)")],
        dev_fraction: Annotated[float, typer.Option(help="share of problems held out as dev")] = 0.1,
        seed: Annotated[int, typer.Option(help="seed of the train/dev split")] = 0,
        mine: Annotated[Literal["none", "bm25", "dense", "hybrid"], typer.Option(
            help="retriever that mines extra hard negatives")] = "hybrid",
        mined_per_query: Annotated[int, typer.Option(help="mined negatives per query")] = 3,
        max_negatives: Annotated[int | None, typer.Option(
            min=0, help="hard negatives per training row at most (default: as many as a query has)")] = None,
        margin: Annotated[float, typer.Option(
            help="drop mined negatives scored within this fraction of the positive (likely positives)")]
        = 0.05,
        model: Annotated[str | None, typer.Option(help="only trajectories of this model")] = None,
        unverified: Annotated[bool, typer.Option(
            help="also learn from runs whose answer is wrong or missing (the judge's verdicts alone; "
            "RaDeR takes verified runs only)")] = False,
        held_out_queries: Annotated[Path | None, typer.Option(
            help="an evaluation set's queries: the theorems they are labelled with (only the held-out "
            "part's, with --held-out-by) never enter the data, so a gain there is on unseen theorems")]
        = None,
        held_out_qrels: Annotated[Path | None, typer.Option(
            help="qrels of --held-out-queries (default: gold ids in the queries file)")] = None,
        labels: Annotated[Path | None, typer.Option(
            help="qrels naming the theorems each problem needs (problem id -> theorem id, e.g. "
            "TheoremQA's): runs on those problems count verified or not, with the labelled theorems "
            "they retrieved as positives")] = None,
        held_out_by: HeldOutByOpt = None,
        held_out_fraction: HeldOutFractionOpt = 0.5,
        generate_with: Annotated[str | None, typer.Option(
            help="an LLM (catalog name or .gguf; backend from settings) writes RaDeR's queries too: "
            "post_llm_query (after retrieval) and theorem_lexical (kept if BM25 finds the theorem); "
            "cached in HOME/generated_queries.jsonl, so a rerun resumes")] = None,
        query_cache: Annotated[Path | None, typer.Option(
            help="the cache of --generate-with's replies (default HOME/generated_queries.jsonl); "
            "benchmarks/generated_queries.jsonl holds the project's, so a new machine rebuilds the "
            "committed harvest without asking the model again")] = None,
        worked_examples: Annotated[bool, typer.Option(
            help="worked examples the runs judged (from `example_corpora`) become examples too: a "
            "step's queries with the solved problem judged useful as positive, the useless ones as "
            "negatives")] = True,
        license: Annotated[str | None, typer.Option(
            help="licence the dataset card declares (a Hub licence id; default: mit, rader's own and "
            "MATH's, when only the built-in theorems and worked examples are in use, else other); "
            "problem and theorem texts keep theirs")]
        = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Positives, hard negatives and queries of every kind from the stored trajectories; the
        folder loads with `datasets.load_dataset` (its README.md card) and BEIR's loader."""
        from rader.app.wiring import (
            corpus_from_settings,
            example_corpus_from_settings,
            retriever_from_settings,
            shared_encoder,
            store_from_settings,
        )
        from rader.retriever import BUILTIN_NAME, EXAMPLES_NAME, held_out_theorems, load_qrels
        from rader.training.dataset import build_examples, split_by_problem, write_dataset

        settings = settings_for(ctx)
        held_out = held_out_from(held_out_by, held_out_fraction)
        if held_out and not held_out_queries:
            raise typer.BadParameter("--held-out-by splits --held-out-queries: give that file too")
        excluded = set()
        if held_out_queries:
            excluded = held_out_theorems(held_out_queries, held_out_qrels, held_out=held_out)
        corpus = corpus_from_settings(settings)
        store = store_from_settings(settings)
        miner = None if mine == "none" else retriever_from_settings(settings, corpus, kind=mine)
        options = settings.retriever.options(settings.home)
        encoder = None if mine == "none" else shared_encoder(options.encoder, options.batch_size)
        writer = generate_with and query_writer(settings, generate_with, query_cache)
        bm25 = writer and retriever_from_settings(settings, corpus, kind="bm25")
        use_solved = worked_examples and bool(settings.example_corpora)  # none configured: nothing to load
        solved = example_corpus_from_settings(settings) if use_solved else None
        labelled = labels and {problem: set(theorems) for problem, theorems in load_qrels(labels).items()}
        examples, report = build_examples(store.iter_trajectories(model=model), corpus, miner=miner,
                                          encoder=encoder, mined_per_query=mined_per_query, margin=margin,
                                          unverified=unverified, held_out=excluded, writer=writer,
                                          lexical_check=bm25, worked_examples=solved,
                                          labels=labelled,
                                          show_progress=settings.show_progress)
        train, dev = split_by_problem(examples, dev_fraction=dev_fraction, seed=seed)
        mit_only = set(settings.corpora) <= {BUILTIN_NAME} and (  # MATH train's examples are MIT too
            solved is None or set(settings.example_corpora) <= {EXAMPLES_NAME})
        license = license or ("mit" if mit_only else "other")
        folder = write_dataset(out, train, dev, report, corpus=corpus, max_negatives=max_negatives,
                               license=license, worked_examples=solved, meta={
            "store": str(store.path), "corpora": settings.corpora, "mine": mine, "margin": margin,
            "dev_fraction": dev_fraction, "seed": seed, "model_filter": model,
            "unverified": unverified, "held_out_queries": held_out_queries and str(held_out_queries),
            "generated_with": generate_with, "labels": labels and str(labels),
            "example_corpora": settings.example_corpora if use_solved else None,
            "held_out": held_out and f"{held_out.field} {held_out.fraction} seed {held_out.seed}"})
        stats = json.loads((folder / "stats.json").read_text())
        if as_json:
            print_json({"folder": str(folder), **stats})
            return
        console.print(_table(f"examples from {stats['build']['trajectories']} trajectories", stats["build"]))
        for split in ("train", "dev"):
            kinds = stats[split].pop("examples_per_kind")
            console.print(_table(f"{split} split ({folder})", {**stats[split], **{
                f"examples of kind {kind}": count for kind, count in sorted(kinds.items())}}))

    @app.command()
    def train(
        ctx: typer.Context,
        data: Annotated[Path, typer.Option(help="folder written by `rader dataset build`")],
        out: Annotated[Path, typer.Option(help="where the trained model goes")],
        base: Annotated[str, typer.Option(
            help="encoder to start from: minilm, mpnet (fetched on first use), registered name, folder")]
        = TRAIN_DEFAULTS.base,
        epochs: Annotated[float, typer.Option(help="passes over the training rows")] = TRAIN_DEFAULTS.epochs,
        batch_size: Annotated[int, typer.Option(help="examples per step (in-batch negatives)")]
        = TRAIN_DEFAULTS.batch_size,
        mini_batch_size: Annotated[int, typer.Option(help="cached loss chunk size (memory)")]
        = TRAIN_DEFAULTS.mini_batch_size,
        learning_rate: Annotated[float, typer.Option(help="peak learning rate")]
        = TRAIN_DEFAULTS.learning_rate,
        loss: Annotated[InfoNCE, typer.Option(help="InfoNCE variant")] = TRAIN_DEFAULTS.loss,
        negatives: Annotated[int | None, typer.Option(
            min=0, help="hard negatives per row (default: all the dataset has; 0: in-batch only)")]
        = TRAIN_DEFAULTS.negatives,
        graded: Annotated[GradedLoss, typer.Option(
            help="also distil the judge's P(yes) margins of judged pairs (MarginMSE)")]
        = TRAIN_DEFAULTS.graded,
        graded_weight: Annotated[float, typer.Option(help="weight of the graded loss")]
        = TRAIN_DEFAULTS.graded_weight,
        lora: Annotated[bool, typer.Option(help="train LoRA adapters (LLM-sized encoders)")]
        = TRAIN_DEFAULTS.lora,
        lora_rank: Annotated[int, typer.Option(help="LoRA rank")] = TRAIN_DEFAULTS.lora_rank,
        attention_dropout: Annotated[float, typer.Option(
            min=0.0, max=0.9, help="dropout on attention weights while training (BERT's own: 0.1; "
            "0 trains ~1.3x as fast on a CPU at the same scores)")]
        = TRAIN_DEFAULTS.attention_dropout,
        seed: Annotated[int, typer.Option(help="random seed")] = TRAIN_DEFAULTS.seed,
        max_steps: Annotated[int, typer.Option(help="stop after N steps (-1: epochs decide)")]
        = TRAIN_DEFAULTS.max_steps,
        save_steps: Annotated[int, typer.Option(help="checkpoint every N steps")] = TRAIN_DEFAULTS.save_steps,
        resume: Annotated[bool, typer.Option(help="continue from the latest checkpoint")] = True,
        as_json: JsonOpt = False,
    ) -> None:
        """Fine-tune a dense encoder contrastively; prints nDCG@10 on the dev split before and after."""
        from rader.training.train import train_encoder

        settings = settings_for(ctx)
        config = TrainConfig(base=base, epochs=epochs, batch_size=batch_size, mini_batch_size=mini_batch_size,
                             learning_rate=learning_rate, loss=loss, negatives=negatives, graded=graded,
                             graded_weight=graded_weight, lora=lora, lora_rank=lora_rank,
                             attention_dropout=attention_dropout, seed=seed, max_steps=max_steps,
                             save_steps=save_steps)
        manifest = train_encoder(data, out, config, home=settings.home, resume=resume,
                                 show_progress=settings.show_progress)
        metrics = manifest["metrics"]
        values = {"rows": manifest["train_rows"], "steps": manifest["steps"], "seconds": manifest["seconds"],
                  **{f"before {k}": v for k, v in metrics["before"].items() if k.startswith(("ndcg", "mrr"))},
                  **{f"after {k}": v for k, v in metrics["after"].items() if k.startswith(("ndcg", "mrr"))}}
        if as_json:
            print_json({**values, "model": str(out), "model_card": manifest["model_card"]})
            return
        console.print(_table(f"trained {out}", values))
        if manifest["model_card"]:
            console.print(f"model card: {out / manifest['model_card']}", highlight=False)
        console.print(f"use it: rader models register {out} --name NAME, "
                      "then RADER_RETRIEVER__ENCODER=NAME", highlight=False)
