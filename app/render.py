"""Rich rendering of an agent run as it streams: one block per node update, and the solution
being written shown token by token until its steps replace it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from rader.agent.records import Trajectory
from rader.app.terminal import plain, visible

DRAFT_LINES = 12  # lines of the solution being written shown live


class RunRenderer:
    """Prints each step's queries, theorems with verdicts, reasoning and sympy checks."""

    def __init__(self, console: Console, theorem_title) -> None:
        self.console = console
        self.title = theorem_title
        self._live: Live | None = None
        self._draft = ""
        self._printed = 0  # steps already printed

    def on_token(self, node: str, text: str) -> None:
        """Show the solution as the model writes it (its last lines; erased when its steps print)."""
        if node != "reason":
            return
        if self._live is None:
            self._draft = ""
            self._live = Live(console=self.console, transient=True, auto_refresh=False)
            self._live.start()
        self._draft += visible(text)
        tail = "\n".join(self._draft.splitlines()[-DRAFT_LINES:])
        self._live.update(Panel(Text(tail), title="writing the solution...", expand=False), refresh=True)

    def close(self) -> None:
        """Erase the draft of a step in progress (call when a run ends early)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __call__(self, node: str, values: dict[str, Any], trajectory: Trajectory) -> None:
        self.close()
        step_no = len(trajectory.steps) + (0 if node in ("reason", "compute", "retry", "finish") else 1)
        if node == "retrieve":
            pending = values["pending"]
            lines = Text()
            for query in pending["queries"]:
                lines.append(f"  query [{query['kind']}]: ", style="cyan")
                lines.append(visible(query["text"][:200]) + "\n")
            for hit in pending["hits"]:
                lines.append(f"  #{hit['rank']} {visible(self.title(hit['theorem_id']))}  ", style="bold")
                lines.append(f"({hit['retriever']} {hit['score']:.3f})\n", style="dim")
            for event in pending["events"]:
                lines.append(f"  event: {visible(event)}\n", style="yellow")
            self.console.print(Panel(lines, title=f"step {step_no}: retrieval", expand=False))
        elif node == "judge":
            lines = Text()
            for judgment in values["pending"]["judgments"]:
                verdict, style = ("relevant", "green") if judgment["relevant"] else ("not relevant", "red")
                score = f" p={judgment['score']:.2f}" if judgment.get("score") is not None else ""
                lines.append(f"  {verdict}{score}: ", style=style)
                title = self.title(judgment["theorem_id"])
                lines.append(visible(f"{title} - {judgment['rationale'][:160]}") + "\n")
            self.console.print(Panel(lines, title=f"step {step_no}: relevance check", expand=False))
        elif node == "reason" and values.get("steps"):
            for step in trajectory.steps[self._printed:]:
                body = plain(step.thought)
                for event in step.events:
                    body.append(f"\nevent: {visible(event)}", style="yellow")
                self.console.print(Panel(body, title=f"step {step.index}", expand=False))
            self._printed = len(trajectory.steps)
        elif node == "compute":
            call = trajectory.steps[-1].tool_calls[-1]
            style = "green" if call.status == "ok" else "red"
            self.console.print(plain(f"  sympy: {call.input} -> {call.output} [{call.status}]", style=style))
        elif node in ("retry", "finish"):
            if values.get("steps"):  # why a second attempt follows, or why none did
                self.console.print(plain(f"  {values['steps'][-1]['events'][-1]}", style="yellow"))
            if node == "finish":
                self.render_final(trajectory)

    def render_final(self, trajectory: Trajectory) -> None:
        labels = {True: ("verified", "green"), False: ("wrong", "red"), None: ("not verified", "")}
        answer = trajectory.final_answer
        body = plain(f"\\boxed{{{answer}}}" if answer is not None else "(no answer)", style="bold")
        body.append("  ").append(*labels[trajectory.verified])
        body.append(f"\nstatus {trajectory.status}, {len(trajectory.steps)} steps, "
                    f"{trajectory.tokens} tokens, trajectory {visible(trajectory.id[:12])}")
        self.console.print(Panel(body, title="answer", expand=False))
