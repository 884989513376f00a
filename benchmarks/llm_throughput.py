"""Tokens/s through rader's LLM layer vs raw xllamacpp, same model, prompt and settings.

Raw: ``xllamacpp.Server.handle_chat_completions`` in-process. Ours: the LangChain chat
model `rader.agent.chat_model` (llama.cpp backend, which talks to the same in-process server
over 127.0.0.1). Greedy decoding, fixed max tokens, alternating order, several rounds.

    python benchmarks/llm_throughput.py [--model qwen2.5-coder-1.5b] [--rounds 3] [--tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

from langchain_core.messages import HumanMessage

from rader.agent.llm import LLMConfig, chat_model, llamacpp_server
from rader.agent.llm.catalog import resolve_model
from rader.app.settings import default_home

PROMPT = "Explain step by step how to find the sum of the roots of x^2 - 5x + 6 = 0, then give the answer."


def raw_tokens_per_s(server, tokens: int) -> float:
    request = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
               "temperature": 0, "seed": 0, "ignore_eos": True}
    started = time.perf_counter()
    reply = server._server.handle_chat_completions(request)
    elapsed = time.perf_counter() - started
    return reply["usage"]["completion_tokens"] / elapsed


def layer_tokens_per_s(llm, tokens: int) -> float:
    started = time.perf_counter()
    reply = llm.invoke([HumanMessage(PROMPT)], max_tokens=tokens, extra_body={"ignore_eos": True})
    elapsed = time.perf_counter() - started
    return reply.usage_metadata["output_tokens"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    path = resolve_model(args.model, default_home())
    server = llamacpp_server(path, context=2048)
    llm = chat_model(LLMConfig(model=str(path), context=2048, temperature=0.0), home=default_home())
    raw_tokens_per_s(server, 8)  # warm-up: first call pays for the KV cache set-up
    raw, ours = [], []
    for i in range(args.rounds):
        pair = [(raw, lambda: raw_tokens_per_s(server, args.tokens)),
                (ours, lambda: layer_tokens_per_s(llm, args.tokens))]
        for bucket, measure in (pair if i % 2 == 0 else pair[::-1]):
            bucket.append(measure())
    ratio = statistics.median(ours) / statistics.median(raw)
    print(f"model {args.model}, {args.tokens} tokens x {args.rounds} rounds, greedy")
    print(f"raw xllamacpp    : {statistics.median(raw):6.2f} tokens/s  {[round(x, 2) for x in raw]}")
    print(f"rader chat model : {statistics.median(ours):6.2f} tokens/s  {[round(x, 2) for x in ours]}")
    print(f"ratio {ratio:.3f} (target >= 0.95): {'meets' if ratio >= 0.95 else 'MISSES'}")


if __name__ == "__main__":
    main()
