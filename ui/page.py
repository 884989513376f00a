"""The student's page: a problem goes in, the agent's run streams out, step by step.

`build_app` lays out the page and wires its events; `serve` launches it where the backend
says (`rader ui`: the settings' ``[ui]`` section, 127.0.0.1:7860 by default). Every
run-like event (solve, stop, open, replay) fills the same outputs: the timeline's view (a
``gr.State`` the timeline renders from), a status line, the answer, the trajectory as JSON,
and its download.

Named endpoints, for `gradio_client` scripts as much as for the page: ``/solve`` (streams),
``/stop``, ``/history``, ``/open``, ``/replay`` and ``/feedback``.

The page imports nothing from `rader.app`: what it needs comes in a `PageBackend`
(rader/ui/backend.py), built by `rader ui`.

Example:
    >>> serve(backend)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from rader.agent.records import Judgment, Trajectory
from rader.retriever import Hit, RaderError, Theorem
from rader.ui import html
from rader.ui.backend import PageBackend, PageDefaults, RunChoices
from rader.ui.examples import Example, load_examples, problem_for
from rader.ui.session import LiveRun, Snapshot

RETRIEVERS = ["none", "bm25", "dense", "hybrid"]
HISTORY_HEADERS = ["id", "started", "status", "verified", "steps", "model", "retriever", "problem"]
REPLAY_STEP_S = 0.6  # pause between steps when a stored run is replayed
STOP_WAIT_S = 60.0  # how long Stop waits for the step in flight before it answers anyway
Outputs = tuple[Any, Any, Any, Any, Any]  # view, status, answer, record, download


class Controller:
    """The page's handlers over its backend (one store, built agents shared by sessions); a
    session's run in flight is found by its Gradio session hash."""

    def __init__(self, backend: PageBackend) -> None:
        self.backend = backend
        self.store = backend.store
        self.runs: dict[str, LiveRun] = {}
        self.downloads = Path(tempfile.mkdtemp(prefix="rader-ui-"))
        self._theorems: dict[str, Theorem] | None = None

    # -- views -----------------------------------------------------------------------------
    def encoders(self) -> gr.Dropdown:
        """The encoder choices as they are now: a model registered after launch shows on reload."""
        return gr.Dropdown(choices=self.backend.encoders())

    def theorem(self, theorem_id: str) -> Theorem | None:
        """A theorem or worked example of the corpora in force, for its card."""
        if self._theorems is None:
            self._theorems = {t.id: t for t in self.backend.items()}
        return self._theorems.get(theorem_id)

    def download(self, trajectory: Trajectory) -> str:
        path = self.downloads / f"trajectory-{trajectory.id}.json"
        path.write_text(json.dumps(trajectory.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        return str(path)

    def shown(self, trajectory: Trajectory, status: str, *, pending: dict[str, Any] | None = None,
              final: bool = True, draft: str = "") -> Outputs:
        """Outputs that show ``trajectory`` (and the text the model is writing now, ``draft``); an
        unfinished one has no answer or download yet."""
        view = {"trajectory": trajectory.to_dict(), "pending": pending, "draft": draft}
        answer = html.answer_html(trajectory) if final else ""
        return view, status, answer, trajectory.to_dict(), self.download(trajectory) if final else gr.skip()

    @staticmethod
    def message(kind: str, text: str) -> Outputs:
        """Only the status line changes: errors are messages in the page, never tracebacks."""
        if kind == "error":
            gr.Warning(text)
        return gr.skip(), html.status_html(kind, text), gr.skip(), gr.skip(), gr.skip()

    # -- solve and stop --------------------------------------------------------------------
    def solve(self, problem: str, answer: str, retriever: str, encoder: str, model: str, max_steps: float,
              k: float, max_seconds: float, examples: str = "none", request: gr.Request = None):
        """Run the agent on a problem, yielding the page's outputs as each node finishes."""
        if not (problem or "").strip():
            yield self.message("error", "Type a problem or pick an example first.")
            return
        examples = examples or "none"
        for chosen_kind in (retriever, examples):
            if chosen_kind not in RETRIEVERS:
                yield self.message("error", f"unknown retriever {chosen_kind!r}; "
                                            f"choose one of {', '.join(RETRIEVERS)}")
                return
        defaults = self.backend.defaults
        choices = RunChoices(retriever, (encoder or "").strip() or defaults.encoder,
                             (model or "").strip() or defaults.model,
                             int(max_steps), int(k), float(max_seconds), examples)
        try:
            config = self.backend.run_config(choices)
        except RaderError as err:
            yield self.message("error", str(err))
            return
        run = LiveRun(partial(self.backend.agent, choices), problem_for(problem, answer),
                      store=self.store, config=config).start()
        self.runs[request.session_hash] = run
        try:
            shown = None
            for snapshot in run.snapshots():
                if snapshot.finished:
                    yield self.finished(snapshot)
                    return
                trajectory = Trajectory.from_dict(snapshot.trajectory) if snapshot.trajectory else None
                status = html.status_html("running", self.progress_line(snapshot, trajectory))
                if trajectory is None or (snapshot.updates, snapshot.draft) == shown:  # a clock tick
                    yield gr.skip(), status, gr.skip(), gr.skip(), gr.skip()
                else:  # a node finished, or the model wrote more: the page streams it
                    yield self.shown(trajectory, status, pending=snapshot.pending, final=False,
                                     draft=snapshot.draft)
                    shown = snapshot.updates, snapshot.draft
        finally:  # also when Gradio closes this generator (Stop, a closed tab): the worker ends too
            run.stop()
            if self.runs.get(request.session_hash) is run:
                del self.runs[request.session_hash]

    @staticmethod
    def progress_line(snapshot: Snapshot, trajectory: Trajectory | None) -> str:
        if trajectory is None:
            if snapshot.fetched:
                done, total = snapshot.fetched
                of = f" of {total / 2**20:,.0f}" if total else ""
                return f"fetching the model: {done / 2**20:,.0f}{of} MB"
            return f"loading the model and the index · {snapshot.elapsed_s:.0f} s"
        step = len(trajectory.steps) + (0 if snapshot.node in ("reason", "compute", "finish") else 1)
        return f"running · step {max(step, 1)} · {snapshot.node} · {snapshot.elapsed_s:.0f} s"

    def finished(self, snapshot: Snapshot) -> Outputs:
        if snapshot.phase == "error" and snapshot.trajectory_id is None:
            return self.message("error", snapshot.error or "the run failed")
        trajectory = self.store.get(snapshot.trajectory_id) if snapshot.trajectory_id else None
        if trajectory is None:  # stopped before the first node
            return self.message("stopped", "stopped before the agent started")
        if snapshot.phase == "stopped":
            kind, line = "stopped", f"stopped after {len(trajectory.steps)} steps: stored as interrupted"
        elif snapshot.phase == "error" or trajectory.status == "error":
            reason = snapshot.error or trajectory.stop_reason or ""
            kind, line = "error", f"the run ended with an error: {reason}"
            gr.Warning(line)
        else:
            reason = trajectory.stop_reason or ""
            kind = "done"
            line = f"finished: {trajectory.status.replace('_', ' ')} ({reason}) in {snapshot.elapsed_s:.1f} s"
        return self.shown(trajectory, html.status_html(kind, line))

    def stop(self, request: gr.Request) -> Outputs:
        """End this session's run after the node in flight; its trajectory stays, interrupted."""
        run = self.runs.get(request.session_hash)
        if run is None:
            return self.message("stopped", "nothing is running")
        run.stop()
        snapshot = run.wait(STOP_WAIT_S)
        if not snapshot.finished:
            return self.message("stopped", "stopping: the run ends once the work in flight is done")
        return self.finished(snapshot)

    # -- history ---------------------------------------------------------------------------
    def history(self, limit: int = 100) -> list[list[Any]]:
        """Stored runs, newest first, one row each."""
        rows = []
        for trajectory in self.store.iter_trajectories(limit=limit):
            verified = {True: "✓", False: "✗", None: ""}[trajectory.verified]
            rows.append([trajectory.id[:12], trajectory.started_at[:19].replace("T", " "), trajectory.status,
                         verified, len(trajectory.steps), Path(trajectory.model).name, trajectory.retriever,
                         trajectory.problem.text[:90]])
        return rows

    @staticmethod
    def pick(event: gr.SelectData) -> str:
        return str(event.row_value[0])

    def open(self, trajectory_id: str) -> Outputs:
        """Show a stored trajectory (an id or a unique prefix of one)."""
        try:
            trajectory = self.store.get((trajectory_id or "").strip())
        except RaderError as err:
            return self.message("error", str(err))
        return self.shown(trajectory, html.status_html("done", f"opened {trajectory.id[:12]} "
                                                                 f"({trajectory.status})"))

    def replay(self, trajectory_id: str):
        """Show a stored trajectory again one step at a time, as it ran."""
        try:
            trajectory = self.store.get((trajectory_id or "").strip())
        except RaderError as err:
            yield self.message("error", str(err))
            return
        steps = trajectory.steps
        for shown in range(len(steps)):
            line = f"replaying {trajectory.id[:12]}: step {shown + 1} of {len(steps)}"
            yield self.shown(dataclasses.replace(trajectory, steps=steps[:shown]),
                             html.status_html("running", line), final=False)
            time.sleep(REPLAY_STEP_S)
        yield self.shown(trajectory, html.status_html("done", f"replayed {trajectory.id[:12]} "
                                                                f"({trajectory.status})"))

    # -- feedback --------------------------------------------------------------------------
    def feedback(self, trajectory_id: str, step_index: int, theorem_id: str, helped: bool) -> str:
        """Store the student's verdict on one retrieved theorem (``judge="human"``)."""
        try:
            self.store.add_human_judgment(trajectory_id, int(step_index), Judgment(
                theorem_id, bool(helped), "student feedback in the UI", judge="human"))
        except RaderError as err:
            gr.Warning(str(err))
            return f"not saved: {err}"
        theorem = self.theorem(theorem_id)
        saved = f"saved: {theorem.title if theorem else theorem_id} {'helped' if helped else 'did not help'}"
        gr.Info(saved)
        return saved

    def vote(self, trajectory_id: str, step_index: int, theorem_id: str, helped: bool,
             current: dict[str, Any] | None) -> dict[str, Any]:
        """A thumb on a card: store it, then show the card with the student's verdict."""
        self.feedback(trajectory_id, step_index, theorem_id, helped)
        pending = (current or {}).get("pending")
        return {"trajectory": self.store.get(trajectory_id).to_dict(), "pending": pending}

    # -- the timeline ----------------------------------------------------------------------
    def timeline(self, current: dict[str, Any] | None, view: gr.State) -> None:
        """Components for the view: per step its queries, theorem cards with thumbs, reasoning."""
        if not current or not current.get("trajectory"):
            markdown("Type a problem (LaTeX welcome) or pick an example, then **Run**. Each step appears "
                     "as the agent takes it: the queries it wrote, the theorems it found, its verdict on "
                     "each, its reasoning and any sympy check.")
            return
        trajectory = Trajectory.from_dict(current["trajectory"])
        markdown(html.problem_html(trajectory))
        for step in trajectory.steps:
            markdown(html.queries_html(step.index, [q.to_dict() for q in step.queries], live=False))
            model, human = html.verdicts(step)
            for hit in step.hits:
                card = html.card_html(hit, self.theorem(hit.theorem_id), model.get(hit.theorem_id),
                                        human.get(hit.theorem_id))
                vote = partial(self.vote, trajectory.id, step.index, hit.theorem_id)
                with gr.Row(elem_classes="rd-card-row"):
                    with gr.Column(scale=8):
                        markdown(card)
                    with gr.Column(scale=1, min_width=140):
                        for helped, label in ((True, "👍 helped"), (False, "👎 not helpful")):
                            button = gr.Button(label, size="sm")
                            button.click(partial(vote, helped), view, view, api_visibility="private")
            markdown(html.thought_html(step))
        pending = current.get("pending")
        if pending:  # the step in progress: retrieved, maybe judged, not yet reasoned
            markdown(html.queries_html(len(trajectory.steps) + 1, pending["queries"], live=True)
                     + html.events_html(pending["events"]))
            judged = {j["theorem_id"]: Judgment.from_dict(j) for j in pending["judgments"]}
            for hit in map(Hit.from_dict, pending["hits"]):
                markdown(html.card_html(hit, self.theorem(hit.theorem_id), judged.get(hit.theorem_id), None,
                                          judging=not judged))
        if current.get("draft"):  # the model's words as it writes them
            markdown(html.draft_html(current["draft"]))


def markdown(value: str) -> gr.Markdown:
    """Markdown with KaTeX on: every fragment of the timeline goes through here."""
    return gr.Markdown(value, latex_delimiters=html.LATEX_DELIMITERS, sanitize_html=True)


def _problem_box(examples: tuple[Example, ...]) -> tuple[gr.Textbox, gr.Textbox, gr.Button, gr.Button]:
    problem = gr.Textbox(label="Problem", lines=3, placeholder="e.g. If $4^6=8^n$, what is $n$?")
    gold = gr.Textbox(label="Gold answer (optional: the answer is verified against it)", max_lines=1)
    with gr.Row():
        run_button = gr.Button("Run", variant="primary")
        stop_button = gr.Button("Stop", variant="stop")
    gr.Examples([[e.problem.text, e.problem.answer] for e in examples], [problem, gold],
                example_labels=[e.label for e in examples], examples_per_page=len(examples),
                label="Examples (MATH train, two per subject)")
    return problem, gold, run_button, stop_button


def _agent_controls(defaults: PageDefaults) -> list[gr.components.Component]:
    """Retriever, encoder, model and budgets, in the order `Controller.solve` takes them (the
    encoder's choices come with each page load)."""
    return [
        gr.Radio(RETRIEVERS, value=defaults.retriever, label="Retriever"),
        gr.Dropdown([defaults.encoder], value=defaults.encoder, allow_custom_value=True,
                    label="Encoder (dense, hybrid)",
                    info="built-in, registered (rader models register) or a model folder"),
        gr.Dropdown(list(defaults.models), value=defaults.model, allow_custom_value=True, label="Model",
                    info="catalog name or .gguf path"),
        gr.Slider(1, 128, value=defaults.max_steps, step=1, label="Max steps (paragraphs)"),
        gr.Slider(1, 10, value=defaults.k, step=1, label="Theorems per retrieval"),
        gr.Number(defaults.max_seconds, label="Max seconds", minimum=1),
        gr.Radio(RETRIEVERS, value=defaults.examples, label="Worked examples",
                 info="similar solved problems (MATH train), judged, then shown to the model"),
    ]


def build_app(backend: PageBackend) -> gr.Blocks:
    """The page, queued: at most ``backend.server.concurrency`` runs at once, ``queue_size``
    more waiting. Launch it with ``css=rader.ui.CSS``, or use `serve`.

    Example:
        >>> demo = build_app(backend)  # doctest: +SKIP
        >>> demo.launch(css=CSS, server_port=7861)  # doctest: +SKIP
    """
    controller = Controller(backend)
    concurrency = backend.server.concurrency
    with gr.Blocks(title="rader: retrieval-augmented math reasoning") as demo:
        gr.Markdown("## rader · watch a retrieval-augmented agent solve a math problem")
        view = gr.State(None)
        with gr.Tabs() as tabs:
            with gr.Tab("Solve", id="solve"):
                with gr.Row():
                    with gr.Column(scale=3):
                        problem, gold, run_button, stop_button = _problem_box(load_examples())
                    with gr.Column(scale=2), gr.Accordion("Agent", open=True):
                        controls = _agent_controls(backend.defaults)
                status = gr.Markdown(label="status", elem_id="rd-status")
                gr.render(inputs=view)(partial(controller.timeline, view=view))
                answer = gr.Markdown(label="answer", latex_delimiters=html.LATEX_DELIMITERS,
                                     elem_id="rd-answer")
                download = gr.DownloadButton("Download trajectory JSON")
                with gr.Accordion("Trajectory JSON", open=False):
                    record = gr.JSON(label="trajectory")
            with gr.Tab("History", id="history") as history_tab:
                with gr.Row():
                    trajectory_id = gr.Textbox(label="Trajectory id (or a unique prefix)", scale=3)
                    open_button = gr.Button("Open", scale=1)
                    replay_button = gr.Button("Replay", scale=1)
                    refresh_button = gr.Button("Refresh", scale=1)
                table = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, wrap=True,
                                     label="Stored runs, newest first (click one to open it)")

        outputs = [view, status, answer, record, download]
        to_solve_tab = {"fn": lambda: gr.Tabs(selected="solve"), "outputs": tabs, "api_visibility": "private"}
        solving = run_button.click(
            controller.solve, [problem, gold, *controls], outputs,
            api_name="solve", concurrency_limit=concurrency, concurrency_id="agent-runs")
        stop_button.click(controller.stop, None, outputs, api_name="stop", cancels=[solving],
                          concurrency_limit=None)
        # public endpoints first: they keep their plain names (/history, /open), the page-only
        # events registered after them take suffixed ones
        refresh_button.click(controller.history, None, table, api_name="history")
        open_button.click(controller.open, trajectory_id, outputs, api_name="open").then(**to_solve_tab)
        replay_button.click(controller.replay, trajectory_id, outputs, api_name="replay").then(**to_solve_tab)
        history_tab.select(controller.history, None, table, api_visibility="private")
        table.select(controller.pick, None, trajectory_id, api_visibility="private").then(
            controller.open, trajectory_id, outputs, api_visibility="private").then(**to_solve_tab)
        gr.api(controller.feedback, api_name="feedback")
        encoder = controls[1]
        demo.load(controller.encoders, None, encoder, api_visibility="private")
    demo.queue(default_concurrency_limit=concurrency, max_size=backend.server.queue_size)
    return demo


def serve(backend: PageBackend) -> None:
    """Launch the page where ``backend.server`` says and serve it until interrupted."""
    ui = backend.server
    try:
        build_app(backend).launch(server_name=ui.host, server_port=ui.port, share=ui.share, css=html.CSS,
                                   show_error=False, footer_links=["api", "gradio"])
    except OSError as err:  # the port is taken, or the address is not this machine's
        raise RaderError(f"cannot serve the page on {ui.host}:{ui.port} ({err}); "
                         "pick another with --port/--host or ui.port/ui.host") from None
