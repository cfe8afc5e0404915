"""Doctor's output: a table of checks (✓ passed, ✗ failed, ! warning, – skipped), then each
problem with its explanation and numbered fix steps, from gemgate.problems; or JSON."""

from __future__ import annotations

from typing import Any

import click
import orjson

from gemgate.problems import PROBLEMS

from .findings import Finding

MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "–"}
_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "bright_black"}
_WORDS = {
    "en": {"title": "gemgate doctor", "problems": "Problems and how to fix them",
           "clear": "All {n} checks passed.", "warned": "All {n} checks passed, with {w} "
           "warning(s) above.", "failed": "{f} of {n} checks failed."},
    "zh": {"title": "gemgate 诊断", "problems": "发现的问题及解决办法",
           "clear": "全部 {n} 项检查通过。", "warned": "全部 {n} 项检查通过，另有 {w} 项提醒"
           "（见上文）。", "failed": "{n} 项检查中有 {f} 项未通过。"},
}


# The table's own words in Chinese: stages, checks, and the fixed phrases of details (what
# Google or the network said stays as it was said). JSON keeps the English ids.
_ZH = {"environment": "环境", "network": "网络", "key": "密钥", "model": "模型",
       "gateway": "网关", "configuration": "配置", "keys": "密钥", "variables": "变量",
       "proxy": "代理", "tunnel": "隧道", "reachable": "可达", "token": "令牌",
       "round trip": "往返调用", "connected": "已连接", "open": "已打开", "accepted": "已接受",
       "handshake done": "握手完成", "answered a 1-token request": "已回答 1 个 token 的请求",
       "models visible": "个模型可见", "the network failed": "网络不通", "answered": "已回答",
       "accepts": "可连接", "set": "已设置", "not set": "未设置"}
_ZH_PHRASES = sorted(_ZH, key=len, reverse=True)


def _words(text: str, lang: str) -> str:
    if lang != "zh":
        return text
    if text in _ZH:
        return _ZH[text]
    for phrase in _ZH_PHRASES:
        if len(phrase) > 3 and phrase in text:
            text = text.replace(phrase, _ZH[phrase])
    return text


def _row(finding: Finding, widths: tuple[int, int, int], colour: bool, lang: str) -> str:
    mark = MARKS[finding.status]
    if colour:
        mark = click.style(mark, fg=_COLOURS[finding.status], bold=True)
    timing = f"{finding.ms:7.1f} ms" if finding.ms is not None else " " * 10
    stage, check = _words(finding.stage, lang), _words(finding.check, lang)
    return (f"  {mark} {stage:<{widths[0]}}  {check:<{widths[1]}}  "
            f"{finding.subject:<{widths[2]}}  {timing}  {_words(finding.detail, lang)}"
            ).rstrip()


def _explained(findings: list[Finding], lang: str) -> list[dict[str, Any]]:
    out = []
    for finding in findings:
        if finding.problem is None or finding.status not in ("fail", "warn"):
            continue
        problem = PROBLEMS.get(finding.problem)
        out.append({"id": finding.problem, "status": finding.status,
                    "subject": f"{finding.check}: {finding.subject}",
                    "detail": finding.detail,
                    "explanation": problem.hint(lang) if problem else finding.detail,
                    "steps": problem.fix(lang) if problem else []})
    return out


def _summary(findings: list[Finding], lang: str) -> str:
    words = _WORDS[lang]
    total = sum(1 for f in findings if f.status != "skip")
    failed = sum(1 for f in findings if f.status == "fail")
    warned = sum(1 for f in findings if f.status == "warn")
    if failed:
        return words["failed"].format(f=failed, n=total)
    return (words["warned"] if warned else words["clear"]).format(n=total, w=warned)


def text(findings: list[Finding], lang: str, colour: bool) -> str:
    words = _WORDS[lang]
    widths = (max(len(_words(f.stage, lang)) for f in findings),
              max(len(_words(f.check, lang)) for f in findings),
              min(60, max(len(f.subject) for f in findings)))
    lines = [words["title"], "", *(_row(f, widths, colour, lang) for f in findings)]
    problems = _explained(findings, lang)
    if problems:
        lines += ["", words["problems"]]
        for number, problem in enumerate(problems, start=1):
            mark = MARKS[problem["status"]]
            lines.append(f" {number}. {mark} {problem['id']} — {problem['subject']}")
            lines.append(f"    {problem['explanation']}")
            if problem["detail"]:
                lines.append(f"    ({problem['detail']})")
            lines += [f"    {step_number}) {step}"
                      for step_number, step in enumerate(problem["steps"], start=1)]
    lines += ["", _summary(findings, lang)]
    return "\n".join(lines)


def as_json(findings: list[Finding], lang: str) -> str:
    report = {"ok": not any(f.status == "fail" for f in findings), "lang": lang,
              "summary": _summary(findings, lang),
              "checks": [f.as_dict() for f in findings],
              "problems": _explained(findings, lang)}
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
