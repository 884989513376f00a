"""HTML fragments of a run for the page: problem, steps, theorem cards, answer, status.

Every fragment is one HTML block without blank lines, placed in a ``gr.Markdown``: Markdown
leaves the inside of such a block alone (so ``*`` or ``![x](url)`` in model text stays text)
and Gradio's KaTeX pass then renders the LaTeX in it. All model, theorem and student text is
hostile input and goes through `text` (``html.escape``) before it is placed anywhere.

Example:
    >>> "<script>" in text("<script>alert(1)</script>")
    False
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

from rader.agent.records import Judgment, Step, Trajectory
from rader.retriever import Hit, Theorem

# KaTeX delimiters for every gr.Markdown that shows mathematics (MATH writes $...$ and \[...\])
LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]
NO_RETRIEVAL = "no retrieval before this step"


def text(value: Any) -> str:
    """Escaped, line breaks as ``&#10;``: no blank line ends the HTML block, the text stays one
    DOM text node (KaTeX renders math that spans lines) and CSS ``pre-wrap`` shows the breaks."""
    return html.escape(str(value)).replace("\r\n", "\n").replace("\n", "&#10;")


def problem_html(trajectory: Trajectory) -> str:
    problem = trajectory.problem
    gold = f'<div class="rd-gold">gold answer: ${text(problem.answer)}$</div>' if problem.answer else ""
    return (f'<div class="rd-problem"><div class="rd-label">problem · {text(problem.id)}</div>'
            f"<div>{text(problem.text)}</div>{gold}</div>")


def queries_html(step_no: int, queries: list[dict[str, Any]], *, live: bool) -> str:
    """A step's heading and the queries its retrieval ran (``kind`` badge, text)."""
    items = "".join(f'<li><span class="rd-kind">{text(q["kind"])}</span> {text(q["text"])}</li>'
                    for q in queries)
    title = f"Step {step_no}" + (" · in progress" if live else "")
    body = f'<ul class="rd-queries">{items}</ul>' if items else f'<div class="rd-dim">{NO_RETRIEVAL}</div>'
    return f'<div class="rd-step-head"><h3>{title}</h3>{body}</div>'


def events_html(events: list[str]) -> str:
    return "".join(f'<div class="rd-event">⚠ {text(e)}</div>' for e in events)


def card_html(hit: Hit, theorem: Theorem | None, model: Judgment | None, human: Judgment | None, *,
              judging: bool = False) -> str:
    """One retrieved theorem or worked example: title, statement (an example's problem, its
    worked solution folded), retriever and score, the model's verdict and rationale, and the
    student's verdict when there is one."""
    title = theorem.title if theorem else hit.theorem_id
    statement = text(theorem.text) if theorem else '<span class="rd-dim">not in the corpora in force</span>'
    if theorem is not None and "solution" in theorem.metadata:
        level = f", level {theorem.metadata['level']}" if theorem.metadata.get("level") else ""
        title = f"Worked example ({theorem.subject or 'solved problem'}{level})"
        statement += (f'<details class="rd-solution"><summary>worked solution</summary>'
                      f'{text(theorem.metadata["solution"])}</details>')
    if model is not None:
        verdict, css = ("relevant", "rd-yes") if model.relevant else ("not relevant", "rd-no")
        score = f" · P(yes) {model.score:.2f}" if model.score is not None else ""
        verdict_html = (f'<div class="rd-verdict {css}">model: {verdict}{score}</div>'
                        f'<div class="rd-rationale">{text(model.rationale)}</div>')
    else:
        verdict_html = f'<div class="rd-verdict">{"judging…" if judging else "not judged"}</div>'
    if human is not None:
        mark = "👍 helped" if human.relevant else "👎 did not help"
        verdict_html += f'<div class="rd-human">you: {mark}</div>'
    state = "" if model is None else (" rd-card-yes" if model.relevant else " rd-card-no")
    return (f'<div class="rd-card{state}"><div class="rd-card-title">{text(title)}'
            f' <span class="rd-dim">{text(hit.theorem_id)}</span></div>'
            f'<div class="rd-statement">{statement}</div>'
            f'<div class="rd-meta">#{hit.rank} · {text(hit.retriever)} · score {hit.score:.3f}</div>'
            f"{verdict_html}</div>")


def verdicts(step: Step) -> tuple[dict[str, Judgment], dict[str, Judgment]]:
    """The model's and the student's latest judgment per theorem id."""
    model = {j.theorem_id: j for j in step.judgments if j.judge == "model"}
    human = {j.theorem_id: j for j in step.judgments if j.judge == "human"}
    return model, human


def thought_html(step: Step) -> str:
    """The step's reasoning, its sympy checks, and the protocol events it recorded."""
    calls = "".join(
        f'<div class="rd-sympy">sympy: <code>{text(c.input)}</code> → <code>{text(c.output)}</code> '
        f'<span class="rd-dim">[{text(c.status)}, {c.elapsed_s:.2f} s]</span></div>'
        for c in step.tool_calls)
    tokens = step.prompt_tokens + step.completion_tokens
    thought = text(step.thought) or '<span class="rd-dim">(no step text)</span>'
    return (f'<div class="rd-thought"><div class="rd-label">reasoning · {step.elapsed_s:.1f} s · '
            f"{tokens} tokens</div><div>{thought}</div>{calls}{events_html(step.events)}</div>")


def draft_html(draft: str) -> str:
    """The text the model is writing now, streamed token by token until it becomes steps."""
    return (f'<div class="rd-thought rd-draft"><div class="rd-label">writing…</div>'
            f"<div>{text(draft)}</div></div>")


def seconds(trajectory: Trajectory) -> float:
    end = datetime.fromisoformat(trajectory.finished_at) if trajectory.finished_at else None
    if end is None:
        return sum(s.elapsed_s for s in trajectory.steps)
    return (end - datetime.fromisoformat(trajectory.started_at)).total_seconds()


def answer_html(trajectory: Trajectory) -> str:
    """The boxed answer, its verification, and what the run cost."""
    answer = trajectory.final_answer
    boxed = f"$\\boxed{{{text(answer)}}}$" if answer is not None else '<span class="rd-dim">no answer</span>'
    gold = trajectory.problem.answer
    if trajectory.verified is True:
        check, css = f"✓ verified: matches the gold answer ${text(gold)}$", "rd-yes"
    elif trajectory.verified is False:
        check, css = f"✗ does not match the gold answer ${text(gold)}$", "rd-no"
    elif gold is None:
        check, css = "not verified: the problem came without a gold answer", "rd-dim"
    else:
        check, css = f"not verified: no answer to check against the gold answer ${text(gold)}$", "rd-dim"
    retrievals = sum(1 for s in trajectory.steps if s.queries)
    stats = (f"{text(trajectory.status)} · {len(trajectory.steps)} steps · {retrievals} retrievals · "
             f"{trajectory.tokens:,} tokens · {seconds(trajectory):.1f} s · model "
             f"{text(Path(trajectory.model).name)} · retriever {text(trajectory.retriever)} · "
             f"trajectory {text(trajectory.id[:12])}")
    return (f'<div class="rd-answer rd-answer-{css}"><div class="rd-boxed">{boxed}</div>'
            f'<div class="rd-check {css}">{check}</div><div class="rd-dim">{stats}</div></div>')


def status_html(kind: str, message: str) -> str:
    """One line above the timeline; ``kind`` is running, done, stopped or error."""
    icon = {"running": "⏳", "done": "✅", "stopped": "⏹", "error": "⚠"}[kind]
    return f'<div class="rd-status rd-status-{kind}">{icon} {text(message)}</div>'


CSS = """
.rd-problem, .rd-statement, .rd-thought, .rd-rationale, .rd-queries, .rd-event { white-space: pre-wrap; }
.rd-problem, .rd-thought, .rd-answer, .rd-step-head { margin: 0.3em 0; }
.rd-problem { padding: 0.6em 0.8em; border-radius: 8px; background: var(--block-background-fill); }
.rd-label { font-size: 0.8em; opacity: 0.7; }
.rd-dim { opacity: 0.65; font-size: 0.9em; }
.rd-kind { font-family: var(--font-mono); font-size: 0.8em; padding: 0 0.4em; border-radius: 4px;
           background: var(--color-accent-soft); }
.rd-queries { margin: 0.2em 0 0.4em 1em; }
.rd-card { border: 1px solid var(--border-color-primary); border-left: 5px solid #999; border-radius: 8px;
           padding: 0.5em 0.8em; }
.rd-card-yes { border-left-color: #16a34a; }
.rd-card-no { border-left-color: #dc2626; }
.rd-card-title { font-weight: 600; }
.rd-statement { max-height: 11em; overflow-y: auto; margin: 0.3em 0; }
.rd-meta { font-size: 0.85em; opacity: 0.75; }
.rd-verdict { font-weight: 600; margin-top: 0.2em; }
.rd-yes { color: #15803d; } .rd-no { color: #b91c1c; }
.rd-rationale { font-style: italic; }
.rd-human { margin-top: 0.2em; font-weight: 600; }
.rd-thought { border-left: 3px solid var(--color-accent); padding-left: 0.8em; }
.rd-sympy { font-size: 0.9em; margin-top: 0.3em; }
.rd-event { color: #b45309; font-size: 0.9em; }
.rd-answer { padding: 0.8em; border-radius: 8px; border: 2px solid var(--border-color-primary); }
.rd-answer-rd-yes { border-color: #16a34a; } .rd-answer-rd-no { border-color: #dc2626; }
.rd-boxed { font-size: 1.4em; }
.rd-status { padding: 0.4em 0.8em; border-radius: 6px; }
.rd-status-error { background: #fee2e2; color: #7f1d1d; }
.rd-status-stopped { background: #fef3c7; color: #78350f; }
.rd-status-done { background: #dcfce7; color: #14532d; }
"""
