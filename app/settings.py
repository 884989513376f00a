"""One typed settings object: defaults < TOML file < environment (``RADER_...``) < CLI flags.

The TOML file is ``$RADER_CONFIG`` if set, else ``<home>/config.toml``; the data directory
``home`` is ``$RADER_HOME`` or ``~/.rader``. Nested values use ``__`` in the environment
(``RADER_RETRIEVER__K=5``) and tables in TOML (``[retriever] k = 5``).

Example:
    >>> settings, origins = load_settings({"retriever": {"k": 3}}, config_file=None)
    >>> settings.retriever.k, origins["retriever.k"]
    (3, 'cli')
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rader.agent.llm import Backend, LLMConfig
from rader.agent.state import AgentConfig
from rader.retriever import RaderError
from rader.retriever.registry import encoder_location
from rader.retriever.types import FusionMethod, IndexType, RetrieverName, RetrieverOptions

ENV_PREFIX = "RADER_"


def default_of(config: type, name: str) -> Any:
    """The default that a config dataclass declares for its field ``name``: the settings
    validate and document each value, the dataclass alone says what it is by default."""
    return {f.name: f.default for f in dataclasses.fields(config)}[name]


retriever_default = partial(default_of, RetrieverOptions)
llm_default = partial(default_of, LLMConfig)
agent_default = partial(default_of, AgentConfig)


class Section(BaseModel):
    """A settings table: unknown keys (typos) and infinite or NaN numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RetrieverSettings(Section):
    """How theorems are retrieved."""

    kind: RetrieverName = Field("hybrid", description="which retriever")
    k: int = Field(10, ge=1, le=1000, description="hits per query")
    encoder: str = Field(retriever_default("encoder"),
                         description="dense encoder: built-in name, folder, or hub id")
    index_type: IndexType = Field(retriever_default("index_type"), description="faiss index type")
    fusion: FusionMethod = Field(retriever_default("fusion"), description="hybrid fusion method")
    alpha: float = Field(retriever_default("alpha"), ge=0.0, le=1.0,
                         description="weighted fusion: dense share")
    rrf_k: int = Field(retriever_default("rrf_k"), ge=1, description="RRF constant")
    depth: int = Field(retriever_default("depth"), ge=1, description="hits per retriever before fusion")
    batch_size: int = Field(retriever_default("batch_size"), ge=1, description="encoder batch size")

    def options(self, home: Path | None = None) -> RetrieverOptions:
        """Index options; with ``home``, a registered encoder name becomes its folder."""
        options = self.model_dump(exclude={"kind", "k"})
        if home is not None:
            options["encoder"] = encoder_location(self.encoder, home)
        return RetrieverOptions(**options)


class LLMSettings(Section):
    """Which language model runs the agent, and how it is called."""

    backend: Backend = Field(llm_default("backend"),
                             description="llamacpp | openai (a server) | transformers | vllm (in-process)")
    model: str = Field(llm_default("model"),
                       description="catalog name, .gguf path, HF checkpoint folder, or server model")
    base_url: str | None = Field(llm_default("base_url"),
                                 description="OpenAI-compatible server URL (backend openai)")
    api_key: str = Field(llm_default("api_key"), description="API key for the server, if it wants one")
    temperature: float = Field(llm_default("temperature"), ge=0.0, le=2.0, description="0: greedy")
    max_tokens: int = Field(llm_default("max_tokens"), ge=1, description="max tokens of one call")
    seed: int = Field(llm_default("seed"))
    timeout_s: float = Field(llm_default("timeout_s"), gt=0,
                             description="per-call timeout (a whole solution is one call)")
    retries: int = Field(llm_default("retries"), ge=0, description="retries of a failed call")
    context: int = Field(llm_default("context"), ge=256, description="llama.cpp context per slot")
    parallel: int = Field(llm_default("parallel"), ge=1, description="llama.cpp slots (concurrent requests)")

    def config(self) -> LLMConfig:
        return LLMConfig(**self.model_dump())


class AgentSettings(Section):
    """The reasoning agent: what it retrieves, when, and its budgets (see `rader.agent.AgentConfig`)."""

    retriever: Literal["none", "bm25", "dense", "hybrid"] = Field(
        "hybrid", description="theorem retriever (none: no theorems)")
    examples: Literal["none", "bm25", "dense", "hybrid"] = Field(
        "none", description="worked-example retriever over `example_corpora` (none: no examples)")
    solution_tokens: int = Field(agent_default("solution_tokens"), ge=16,
                                 description="completion tokens of the solution (bare budget)")
    max_tokens: int = Field(agent_default("max_tokens"), ge=1,
                            description="prompt + completion tokens over the whole run")
    max_seconds: float = Field(agent_default("max_seconds"), gt=0, description="wall time of a run")
    max_steps: int = Field(agent_default("max_steps"), ge=1,
                           description="paragraphs of an attempt: a safety net far above what solutions need")
    max_retrievals: int = Field(agent_default("max_retrievals"), ge=0)
    retrieve_before: bool = Field(agent_default("retrieve_before"),
                                  description="retrieve for the problem before the solution starts")
    retrieve_when: Literal["always", "unsure"] = Field(
        agent_default("retrieve_when"), description="always, or only after a first attempt without "
        "retrieval whose answer is missing or under unsure_below confidence")
    unsure_below: float = Field(agent_default("unsure_below"), ge=0, le=1,
                                description="confidence (lowest window's token probability) under "
                                "which a first attempt is unsure")
    confidence_window: int = Field(agent_default("confidence_window"), ge=1,
                                   description="tokens of that window")
    stop_when_unsure: bool = Field(agent_default("stop_when_unsure"),
                                   description="end an attempt that another may follow as soon as its "
                                   "confidence falls under unsure_below (it has no answer then)")
    max_attempts: int = Field(agent_default("max_attempts"), ge=1,
                              description="attempts at a solution when unsure: the first alone, the "
                              "second with retrieval, later ones sampled (the second too, with nothing "
                              "to retrieve); `choose` picks the answer")
    retry_temperature: float = Field(agent_default("retry_temperature"), ge=0,
                                     description="temperature of the sampled attempts")
    choose: Literal["surest", "vote"] = Field(
        agent_default("choose"), description="the answer of several attempts: the surest, or vote "
        "(every attempt written to its answer, more until one answer has a majority of "
        "max_attempts; the answer most attempts gave stands, ties to the earliest)")
    retrieve_on_request: bool = Field(agent_default("retrieve_on_request"),
                                      description="let the model ask with a `Search:` line")
    retrieve_every: int = Field(agent_default("retrieve_every"), ge=0,
                                description="also retrieve after every N paragraphs (0: never)")
    write_query: bool = Field(agent_default("write_query"),
                              description="the model names the theorem it needs (llm_query)")
    k: int = Field(agent_default("k"), ge=1, description="theorems retrieved and judged per retrieval")
    examples_k: int = Field(agent_default("examples_k"), ge=1,
                            description="worked examples retrieved and judged")
    max_examples: int = Field(agent_default("max_examples"), ge=0,
                              description="worked examples shown to the model")
    judge: bool = Field(agent_default("judge"), description="self-reflective relevance check")
    judge_threshold: float = Field(agent_default("judge_threshold"), ge=0, le=1,
                                   description="P(yes) that makes a hit relevant")
    judge_top_threshold: float = Field(agent_default("judge_top_threshold"), ge=0, le=1,
                                       description="same, for a retrieval's best theorem")
    example_threshold: float = Field(agent_default("example_threshold"), ge=0, le=1,
                                     description="P(yes) that makes an example relevant")
    twin_similarity: float = Field(agent_default("twin_similarity"), ge=0, le=1, description=(
        "dense cosine at which a worked example counts as a near-twin of the problem and is shown "
        "without judging (examples retriever dense; 0: off)"))
    judge_concurrency: int = Field(agent_default("judge_concurrency"), ge=1,
                                   description="verdict calls sent at once (a server that batches: vLLM)")
    judge_chars: int = Field(agent_default("judge_chars"), ge=0,
                             description="statement characters shown to the judge")
    theorem_chars: int = Field(agent_default("theorem_chars"), ge=0,
                               description="statement characters of a theorem shown to the model")
    example_chars: int = Field(agent_default("example_chars"), ge=0,
                               description="solution characters of an example shown")
    compute: bool = Field(agent_default("compute"),
                          description="let the model ask sympy with a `Compute:` line")
    force_answer: bool = Field(agent_default("force_answer"),
                               description="out of budget without an answer: ask for it alone")
    answer_tokens: int = Field(agent_default("answer_tokens"), ge=1,
                               description="tokens of that forced answer")
    reasks: int = Field(agent_default("reasks"), ge=0, description="re-asks of an empty or failed reply")

    def config(self) -> AgentConfig:
        return AgentConfig(**self.model_dump(exclude={"retriever", "examples"}))


class UISettings(Section):
    """The student's web page (`rader ui`)."""

    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 opens it to the network")
    port: int = Field(7860, ge=1, le=65535, description="port of the page")
    share: bool = Field(False, description="also open a public gradio.live link")
    concurrency: int | None = Field(None, ge=1, description="runs served at once (default: llm.parallel)")
    queue_size: int = Field(32, ge=1, description="runs that may wait for a free slot")


class ServeSettings(Section):
    """The HTTP service (`rader serve`): OpenAI-compatible chat, retrieval, MCP, and its limits."""

    host: str = Field("127.0.0.1", description="address to bind; any non-loopback address needs api_key")
    port: int = Field(8765, ge=0, le=65535, description="port (0 picks a free one)")
    api_key: SecretStr | None = Field(None, description="required as `Authorization: Bearer KEY` when set")
    concurrency: int | None = Field(None, ge=1, description="agent runs at once (default: llm.parallel)")
    queue_size: int = Field(16, ge=0, description="runs that may wait for a slot; beyond: HTTP 429")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body (HTTP 413 above)")
    max_queries: int = Field(256, ge=1, description="queries in one /retrieve request")
    max_query_chars: int = Field(2000, ge=1, description="characters in one query")
    max_topk: int = Field(100, ge=1, description="largest topk / k of a search")
    max_problem_chars: int = Field(8000, ge=1, description="characters in a problem (the last user message)")
    max_run_seconds: float = Field(600.0, gt=0, description="wall-time budget a request may ask for")
    drain_seconds: float = Field(30.0, ge=0, description="on SIGTERM, wait this long for runs in flight")


def default_home() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}HOME") or Path.home() / ".rader").expanduser()


class Settings(BaseSettings):
    """Everything a rader run can be told; `rader config show` prints it with origins."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True,
        allow_inf_nan=False,
    )

    home: Path = Field(default_factory=default_home, description="data directory")
    corpora: list[str] = Field(["builtin"], description="theorem corpora to search, merged in order")
    example_corpora: list[str] = Field(["math-train"], description="worked-example corpora, merged in order")
    show_progress: bool = Field(True, description="progress bars (RADER_SHOW_PROGRESS=0 hides)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    retriever: RetrieverSettings = Field(default_factory=RetrieverSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    ui: UISettings = Field(default_factory=UISettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    toml_file: ClassVar[Path | None] = None

    @field_validator("home")
    @classmethod
    def _home_is_a_folder(cls, home: Path) -> Path:
        home = home.expanduser()
        if home.exists() and not home.is_dir():
            raise ValueError(f"the data directory {home} is a file, not a folder")
        return home

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # earlier wins: CLI (passed as init kwargs) > environment > TOML file > defaults
        sources = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)


def config_path(config_file: Path | str | None = "auto", home: Path | str | None = None) -> Path | None:
    """The TOML file in force: an explicit one, ``$RADER_CONFIG``, or ``<home>/config.toml``
    (``home`` from the command line when given, else ``$RADER_HOME`` or ``~/.rader``)."""
    if config_file != "auto":
        return Path(config_file) if config_file else None
    named = os.environ.get(f"{ENV_PREFIX}CONFIG")
    return Path(named) if named else Path(home or default_home()).expanduser() / "config.toml"


# RADER_* variables that are not settings: read by rader's CLI, tests and benchmarks themselves
_OTHER_VARIABLES = {"CONFIG", "NO_PROGRESS", "SHARED_DATA", "TEST_MODELS"}


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """``RADER_*`` environment variables that name no setting, each with a suggestion."""
    import difflib

    known = {key.upper().replace(".", "__") for key in flatten(Settings.model_construct().model_dump())}
    known |= {name.upper() for name, field in Settings.model_fields.items()}
    unknown = []
    for variable in sorted(environ if environ is not None else os.environ):
        name = variable.removeprefix(ENV_PREFIX)
        if not variable.startswith(ENV_PREFIX) or name in _OTHER_VARIABLES or name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
        unknown.append(variable + (f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""))
    return unknown


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: ``{"retriever": {"k": 1}}`` -> ``{"retriever.k": 1}``."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_settings(
    cli: dict[str, Any] | None = None, *, config_file: Path | str | None = "auto"
) -> tuple[Settings, dict[str, str]]:
    """The settings in force and, for each dotted key, where its value came from."""
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    unknown = unknown_variables()
    if unknown:
        raise RaderError(f"unknown settings in the environment: {', '.join(unknown)}; "
                         "`rader config show` lists every setting")
    path = config_path(config_file, home=cli.get("home"))
    named = config_file != "auto" or os.environ.get(f"{ENV_PREFIX}CONFIG")
    if path is not None and named and not path.is_file():
        raise RaderError(f"config file not found: {path}")
    found = path if path is not None and path.is_file() else None

    class _Bound(Settings):  # binds the TOML path without global state
        toml_file = found

    try:
        settings = _Bound(**cli)
        layers = [("env", EnvSettingsSource(_Bound)()), ("cli", cli)]
        if found is not None:
            layers.insert(0, (f"file {found}", TomlConfigSettingsSource(_Bound, toml_file=found)()))
    except (ValidationError, ValueError) as err:
        raise RaderError(f"invalid settings: {err}") from None
    origins = dict.fromkeys(flatten(settings.model_dump()), "default")
    for origin, values in layers:
        for key in flatten(values):
            if key in origins:
                origins[key] = origin
    return Settings.model_validate(settings.model_dump()), origins
