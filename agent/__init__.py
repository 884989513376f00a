"""rader.agent: the LangGraph reasoning agent, its LLM runtimes, tools and trajectory store.

Example:
    >>> from rader.agent import AgentConfig, build_graph, parse_reason
    >>> parse_reason("Step: 1+1=2\\nAnswer: \\\\boxed{2}").answer
    '2'
"""

from rader.agent.graph import build_graph
from rader.agent.llm import LLMConfig, chat_model
from rader.agent.models import CATALOG, DEFAULT_MODEL, fetch, resolve_model
from rader.agent.protocol import last_boxed, parse_query, parse_reason, parse_verdict
from rader.agent.records import Judgment, Problem, Step, ToolCall, Trajectory
from rader.agent.sandbox import ComputeLimits, compute, verify_answer
from rader.agent.state import AgentConfig, AgentState
from rader.agent.store import MergeReport, TrajectoryStore, read_trajectories

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "AgentConfig",
    "AgentState",
    "ComputeLimits",
    "Judgment",
    "LLMConfig",
    "MergeReport",
    "Problem",
    "Step",
    "ToolCall",
    "Trajectory",
    "TrajectoryStore",
    "build_graph",
    "chat_model",
    "compute",
    "fetch",
    "last_boxed",
    "parse_query",
    "parse_reason",
    "parse_verdict",
    "read_trajectories",
    "resolve_model",
    "verify_answer",
]
