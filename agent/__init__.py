"""rader.agent: the LangGraph reasoning agent, its LLM runtimes, tools and trajectory store.

Example:
    >>> from rader.agent import AgentConfig, build_graph, last_boxed
    >>> last_boxed("So the answer is $\\\\boxed{2}$.")
    '2'
"""

from rader.agent.graph import build_graph
from rader.agent.llm import LLMConfig, chat_model
from rader.agent.models import CATALOG, DEFAULT_MODEL, fetch, resolve_model
from rader.agent.parts import AgentParts, PartsCache
from rader.agent.problems import load_problems
from rader.agent.protocol import find_request, last_boxed, paragraphs, parse_query, parse_verdict
from rader.agent.records import Judgment, Problem, Step, ToolCall, Trajectory
from rader.agent.sandbox import ComputeLimits, compute, verify_answer
from rader.agent.state import AgentConfig, AgentState
from rader.agent.store import MergeReport, TrajectoryStore, read_trajectories

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "AgentConfig",
    "AgentParts",
    "AgentState",
    "ComputeLimits",
    "Judgment",
    "LLMConfig",
    "MergeReport",
    "PartsCache",
    "Problem",
    "Step",
    "ToolCall",
    "Trajectory",
    "TrajectoryStore",
    "build_graph",
    "chat_model",
    "compute",
    "fetch",
    "find_request",
    "last_boxed",
    "load_problems",
    "paragraphs",
    "parse_query",
    "parse_verdict",
    "read_trajectories",
    "resolve_model",
    "verify_answer",
]
