"""RaDeR's generated queries (the paper's section 4.2): an LLM pass of `rader dataset build`.

Two kinds beside the queries the agent recorded (whose ``llm_query`` the model wrote *before*
it saw any theorem, and which keeps that kind):

* ``post_llm_query``, RaDeR's llm_query: written after retrieval, from the problem, the
  solution so far and the theorem judged relevant to the next step: what that step needs and
  why the theorem's conditions hold there, in few of the theorem's own words. One per
  (trajectory, step, positive); it keeps the step's judged negatives.
* ``theorem_lexical``, RaDeR's lexical query: the key terms of the theorem alone, kept only if
  BM25 ranks the theorem in its top 20 (the round-trip filter). One per positive theorem.

Every reply is cached in a JSON Lines file under a key of (kind, prompt version, model,
inputs), one flushed line per reply, so a rerun after a crash or Ctrl-C asks the model only
what it has not answered yet, and a second build with the same model costs nothing.

Example:
    >>> writer = QueryWriter(chat_model(LLMConfig(model="smollm2-135m"), home=home), "smollm2-135m",
    ...                      QueryCache(home / "generated_queries.jsonl"))  # doctest: +SKIP
    >>> writer.lexical(builtin_corpus().get("rader/algebra/vieta_quadratic"))  # doctest: +SKIP
    'vieta formulas sum product roots quadratic'
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from tqdm.auto import tqdm

from rader.agent.prompts import quote_theorem, shorten
from rader.retriever import Query, QueryKind, Retriever, Theorem

log = logging.getLogger(__name__)

POST_QUERY_KIND: QueryKind = "post_llm_query"
LEXICAL_KIND: QueryKind = "theorem_lexical"
PROMPT_VERSION = 1
LEXICAL_DEPTH = 20  # RaDeR's round trip: BM25 must rank the theorem in its top 20
MAX_TOKENS = 64  # a query is a sentence or two

POST_QUERY_SYSTEM = (
    "You write search queries for a library of math theorems. You see a problem, the solution "
    "written so far and the theorem that the next step needs. Write the query a student at this "
    "point would type to find that theorem: say what the next step must do and which facts of the "
    "problem make the theorem apply. Do not name the theorem and copy few of its words. Reply with "
    "the query alone, one or two sentences.")
LEXICAL_SYSTEM = (
    "You write keyword queries for a search engine over math theorems. Reply with the query "
    "alone: at most twelve key terms of the theorem you are shown, no sentence.")


@dataclass(frozen=True, slots=True)
class PositiveContext:
    """A theorem judged relevant to a step, with what came before the step."""

    problem_id: str
    problem: str
    solution_so_far: str  # the thoughts of the steps before the one the theorem helped
    theorem_id: str
    negatives: tuple[str, ...]  # judged irrelevant on the same step
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class GeneratedQuery:
    query: Query
    problem_id: str
    positive: str
    negatives: tuple[str, ...]
    provenance: dict[str, Any]


@dataclass(slots=True)
class GenerationReport:
    asked: int = 0  # replies the model wrote in this build
    cached: int = 0  # replies taken from the cache
    failed: int = 0  # the model call failed (asked again on the next build)
    rejected: int = 0  # no query in the reply, or a post-retrieval query naming the theorem
    lexical_dropped: int = 0  # BM25 did not find the theorem in its top 20

    def to_dict(self) -> dict[str, int]:
        return {"generated_asked": self.asked, "generated_cached": self.cached,
                "generated_failed": self.failed, "generated_rejected": self.rejected,
                "lexical_dropped_by_bm25": self.lexical_dropped}


class QueryCache:
    """key -> reply, in a JSON Lines file that grows by one flushed line per new reply."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._replies: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._replies[row["key"]] = row["reply"]
                except (ValueError, KeyError, TypeError):
                    log.warning("skipping a damaged line of %s (a build cut mid-write)", self.path)

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, key: str) -> str | None:
        return self._replies.get(key)

    def put(self, key: str, reply: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")
        self._replies[key] = reply


def _key(*parts: str) -> str:
    return hashlib.sha256(json.dumps([PROMPT_VERSION, *parts]).encode()).hexdigest()


_LABEL = re.compile(r"^(search query|query|keywords?|key terms)\s*:\s*", re.I)


def clean_reply(reply: str, *, max_words: int, avoid: str = "") -> str | None:
    """The query in a model's reply: its first line that is not an echo of the prompt, label
    dropped, cut at ``max_words``; None when there is none, or when it contains ``avoid``
    (the theorem's title, which a post-retrieval query must not name)."""
    for line in reply.splitlines():
        text = _LABEL.sub("", " ".join(line.split())).strip().strip('"').strip()
        if not text or text.lower().startswith(("theorem", "problem:", "solution so far", "<theorem")):
            continue
        words = text.split()
        if len(words) < 2 or (len(avoid) > 3 and avoid.lower() in text.lower()):
            return None
        return " ".join(words[:max_words])
    return None


class QueryWriter:
    """Writes both kinds with one chat model, through the cache."""

    def __init__(self, llm, model: str, cache: QueryCache, report: GenerationReport | None = None) -> None:
        self.llm, self.model, self.cache = llm, model, cache
        self.report = report or GenerationReport()

    def _ask(self, key: str, system: str, user: str) -> str:
        if (cached := self.cache.get(key)) is not None:
            self.report.cached += 1
            return cached
        try:
            message = self.llm.invoke([SystemMessage(system), HumanMessage(user)], max_tokens=MAX_TOKENS)
        except Exception as err:  # the clients raise many types; the next build asks again
            log.warning("a query writer call failed (%s: %s): skipped", type(err).__name__, str(err)[:200])
            self.report.failed += 1
            return ""
        reply = message.content if isinstance(message.content, str) else str(message.content)
        self.report.asked += 1
        self.cache.put(key, reply)
        return reply

    def post_query(self, context: PositiveContext, theorem: Theorem) -> str | None:
        """RaDeR's llm_query for a positive, or None when the reply is unusable."""
        recent = context.solution_so_far[-1500:]  # the steps just before the one the theorem helped
        quoted = quote_theorem(theorem.id, theorem.title, theorem.text[:800])
        user = (f"Problem:\n{shorten(context.problem, 1200)}\n\nSolution so far:\n{recent or '(nothing yet)'}"
                f"\n\nTheorem the next step needs:\n{quoted}\n\nQuery:")
        key = _key(POST_QUERY_KIND, self.model, context.problem, recent, theorem.id, theorem.text)
        return self._checked(self._ask(key, POST_QUERY_SYSTEM, user), max_words=60, avoid=theorem.title)

    def lexical(self, theorem: Theorem) -> str | None:
        """RaDeR's lexical query for a theorem (before the BM25 round trip)."""
        user = f"{quote_theorem(theorem.id, theorem.title, theorem.text[:800])}\n\nKeywords:"
        key = _key(LEXICAL_KIND, self.model, theorem.id, theorem.title, theorem.text)
        return self._checked(self._ask(key, LEXICAL_SYSTEM, user), max_words=20)

    def _checked(self, reply: str, *, max_words: int, avoid: str = "") -> str | None:
        if not reply:
            return None  # the call failed: counted already
        text = clean_reply(reply, max_words=max_words, avoid=avoid)
        self.report.rejected += text is None
        return text


def generate_queries(contexts: list[PositiveContext], theorem, writer: QueryWriter, bm25: Retriever, *,
                     show_progress: bool = False) -> list[GeneratedQuery]:
    """Both kinds for ``contexts`` (``theorem(id)`` looks a theorem up): a post-retrieval query per
    context, a lexical query per distinct positive that BM25 finds again in its top 20."""
    found: list[GeneratedQuery] = []
    first_seen: dict[str, PositiveContext] = {}
    for context in tqdm(contexts, desc="writing queries", unit="positive", disable=not show_progress):
        first_seen.setdefault(context.theorem_id, context)
        if text := writer.post_query(context, theorem(context.theorem_id)):
            found.append(GeneratedQuery(Query(text, POST_QUERY_KIND), context.problem_id, context.theorem_id,
                                        context.negatives, context.provenance))
    lexical = []
    for theorem_id, context in first_seen.items():
        if text := writer.lexical(theorem(theorem_id)):
            lexical.append(GeneratedQuery(Query(text, LEXICAL_KIND), context.problem_id, theorem_id, (),
                                          context.provenance))
    rankings = bm25.search_many([g.query for g in lexical], k=LEXICAL_DEPTH) if lexical else []
    for generated, hits in zip(lexical, rankings, strict=True):
        if generated.positive in {h.theorem_id for h in hits}:
            found.append(generated)
        else:
            writer.report.lexical_dropped += 1
    return found
