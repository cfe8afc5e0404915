"""What the guardrails add to a request: the stage's time over a 10,000-token prompt, every
built-in detector, a custom one, a deny rule and the injection screen on.

    python -m bench.guardrails           # 200 rounds
    python -m bench.guardrails --smoke   # for CI

The prompt is ~40,000 characters of prose in 10 parts (and a Chinese one), with a phone, an
e-mail, an ID number and a card number in some of them; each round parses the body afresh
(the stage masks in place) and runs the stage: rules, one scan per text part, the body written
again. Reported: the median and p95 per call, and per 1,000 tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import orjson

from gemgate.config import GuardrailsConfig
from gemgate.core.call import Call, Tenant
from gemgate.pipeline.guardrails import Guardrails
from gemgate.scheduling.estimate import estimate_tokens

_PROSE = ("The gateway answers every request with care and the model considers context "
          "before it replies while keys rotate quietly across projects so quotas last longer. ")
_CJK = "网关认真回答每个请求，模型会先理解上下文，密钥轮换让配额更持久。"
_PII = " Call 13812345678 or write to zhang.san@example.cn; ID 11010519491231002X, card " \
       "4111 1111 1111 1111. "
POLICY = {"default": "all", "policies": {"all": {
    "detectors": {"PHONE": "restore", "EMAIL": "restore", "CN_ID": "redact",
                  "BANK_CARD": "redact", "API_KEY": "block", "IP": "log"},
    "custom": [{"name": "EMPLOYEE", "pattern": r"EMP-\d{6}"}],
    "deny": [{"name": "codename", "keywords": ["Project Nightjar"], "regex": r"\bsecret-\d+"}],
    "injection": {"enabled": True}}}}


def _body() -> bytes:
    parts = []
    for n in range(10):
        text = _PROSE * 24 + (_PII if n % 3 == 0 else "")
        parts.append({"text": text})
    parts.append({"text": _CJK * 60})
    return orjson.dumps({"contents": [{"role": "user", "parts": parts}]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rounds = 5 if args.smoke else args.rounds
    guard = Guardrails(GuardrailsConfig.model_validate(POLICY))
    raw = _body()
    tokens = estimate_tokens(orjson.loads(raw))
    timings, parse = [], []
    for _ in range(rounds):
        call = Call(request_id="b", method="POST", version="v1beta",
                    path="models/gemini-2.5-flash:generateContent", query="", headers={},
                    body=raw, action="generateContent")
        call.tenant = Tenant("bench")
        started = time.perf_counter()
        call.parsed = orjson.loads(raw)  # what the decode stage does anyway, for comparison
        parsed = time.perf_counter()
        refused = guard.check(call)
        done = time.perf_counter()
        assert refused is None and b"13812345678" not in call.body
        parse.append(parsed - started)
        timings.append(done - parsed)
    timings.sort()
    median = statistics.median(timings) * 1000
    print(f"guardrails stage over a {tokens:,}-token prompt ({len(raw):,} bytes, 11 parts):")
    print(f"  median {median:.2f} ms, p95 {timings[int(len(timings) * 0.95)] * 1000:.2f} ms "
          f"({median / tokens * 1000:.3f} ms per 1,000 tokens); parsing the body alone: "
          f"{statistics.median(parse) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
