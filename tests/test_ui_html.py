"""The page's HTML fragments: hostile text stays text, verdicts and verification read right,
and the shipped examples cover every MATH subject with gold answers."""

from __future__ import annotations

import re

from rader.agent.records import Judgment, Problem, Step, ToolCall, Trajectory
from rader.retriever import Hit, Query, Theorem
from rader.ui.examples import load_examples, problem_for
from rader.ui.html import answer_html, card_html, queries_html, thought_html

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>\n\n![pixel](http://evil.example/p.png)'


def test_hostile_text_is_escaped_everywhere_and_never_ends_the_html_block():
    theorem = Theorem("t1", HOSTILE, HOSTILE)
    judgment = Judgment("t1", True, HOSTILE, 0.9)
    step = Step(1, thought=HOSTILE, tool_calls=[ToolCall("sympy", HOSTILE, HOSTILE)], events=[HOSTILE])
    fragments = [
        card_html(Hit("t1", 1.5, 1, "bm25"), theorem, judgment, None),
        queries_html(1, [Query(HOSTILE, "llm_query").to_dict()], live=True),
        thought_html(step),
    ]
    for fragment in fragments:
        assert "<script" not in fragment and "<img" not in fragment and "onerror=\"" not in fragment
        assert "&lt;script&gt;" in fragment
        # a blank line would end the HTML block and hand the rest to Markdown (images, links)
        assert "\n" not in fragment and "&#10;&#10;![pixel]" in fragment


def test_card_shows_retriever_score_and_both_verdicts():
    theorem = Theorem("vieta", "Vieta's formulas", r"The roots of $ax^2+bx+c=0$ sum to $-\frac{b}{a}$.")
    hit = Hit("vieta", 3.25, 1, "bm25")
    card = card_html(hit, theorem, Judgment("vieta", False, "not needed", 0.12),
                     Judgment("vieta", True, "", judge="human"))
    assert "Vieta&#x27;s formulas" in card and r"$-\frac{b}{a}$" in card
    assert "bm25 · score 3.250" in card and "model: not relevant · P(yes) 0.12" in card
    assert "you: 👍 helped" in card and "rd-card-no" in card
    pending = card_html(hit, None, None, None, judging=True)
    assert "judging…" in pending and "not in the corpora in force" in pending


def test_answer_panel_says_how_the_answer_was_checked():
    trajectory = Trajectory.start(Problem("p", "2+3?", answer="5"), model="/models/smol.gguf",
                                  retriever="bm25")
    trajectory.steps = [Step(1, thought="2+3=5", queries=[Query("2+3", "problem")], prompt_tokens=900,
                             completion_tokens=100)]
    trajectory.final_answer, trajectory.verified, trajectory.status = "5", True, "done"
    panel = answer_html(trajectory)
    assert r"$\boxed{5}$" in panel and "✓ verified: matches the gold answer $5$" in panel
    assert re.search(r"done · 1 steps · 1 retrievals · 1,000 tokens · [\d.]+ s · model smol.gguf", panel)
    trajectory.verified = False
    assert "✗ does not match the gold answer" in answer_html(trajectory)
    trajectory.final_answer, trajectory.verified = None, None
    assert "no answer to check" in answer_html(trajectory)
    trajectory.problem.answer = None
    assert "without a gold answer" in answer_html(trajectory)


def test_examples_cover_every_math_subject_with_gold_answers_and_keep_their_ids():
    examples = load_examples()
    subjects = {e.subject for e in examples}
    assert subjects == {"Algebra", "Counting & Probability", "Geometry", "Intermediate Algebra",
                        "Number Theory", "Prealgebra", "Precalculus"}
    assert all(e.problem.answer and e.problem.source == "MATH" for e in examples)
    first = examples[0].problem
    assert problem_for(first.text, first.answer) == first  # an example keeps its MATH id
    typed = problem_for("  What is 2+2?  ", "")
    assert typed.id.startswith("ui/") and typed.answer is None and typed.text == "What is 2+2?"
    assert problem_for("What is 2+2?", "4").id == typed.id  # same text, same id: runs group together
