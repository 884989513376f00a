"""rader.agent: the LangGraph reasoning agent, its LLM runtimes, tools and trajectory store.

Example:
    >>> from rader.agent import AgentConfig, build_graph, last_boxed
    >>> last_boxed("So the answer is $\\\\boxed{2}$.")
    '2'
"""

from rader.retriever.lazy import lazy_exports

# module -> its public names, loaded on first use (the graph alone imports LangGraph)
_EXPORTS = {
    "graph": "AGENT_GRAPH build_graph compile_graph",
    "llm": "CATALOG DEFAULT_MODEL LLMConfig chat_model fetch resolve_model",
    "parts": "AgentParts PartsCache",
    "problems": "load_problems",
    "protocol": "find_request last_boxed paragraphs parse_query parse_verdict",
    "records": "Judgment Problem Step ToolCall Trajectory",
    "sandbox": "ComputeLimits compute verify_answer",
    "state": "AgentConfig AgentContext AgentState",
    "store": "MergeReport TrajectoryStore read_trajectories",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
