"""Every problem gemgate recognises: one record per problem, read by every mapping.

A record holds what the problem means and how to fix it (English and Chinese, the gateway's
`hint` and `gemgate doctor`'s steps), and how it goes on the wire when gemgate itself answers
with it: HTTP status, Google's status word (from the HTTP status), OpenAI's error code, gemgate's
own message, and whether another model or provider may do better (fallback). Ids are a
`StrEnum`, so a misspelt id is a type error, not an empty hint. Hints name the cause first, then
the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class ProblemId(StrEnum):
    API_KEY_INVALID = "API_KEY_INVALID"
    SERVICE_DISABLED = "SERVICE_DISABLED"
    CONSUMER_SUSPENDED = "CONSUMER_SUSPENDED"
    API_KEY_RESTRICTED = "API_KEY_RESTRICTED"
    LOCATION_UNSUPPORTED = "LOCATION_UNSUPPORTED"
    FREE_TIER_UNAVAILABLE = "FREE_TIER_UNAVAILABLE"
    KEY_IP_RESTRICTED = "KEY_IP_RESTRICTED"
    KEY_REFERRER_RESTRICTED = "KEY_REFERRER_RESTRICTED"
    KEY_API_RESTRICTED = "KEY_API_RESTRICTED"
    QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"
    ALL_PROJECTS_COOLING = "ALL_PROJECTS_COOLING"
    NO_QUOTA_ROOM = "NO_QUOTA_ROOM"
    BAD_PRIORITY = "BAD_PRIORITY"
    NO_HEALTHY_KEYS = "NO_HEALTHY_KEYS"
    MODEL_OVERLOADED = "MODEL_OVERLOADED"
    UPSTREAM_INTERNAL = "UPSTREAM_INTERNAL"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    UPSTREAM_UNREACHABLE = "UPSTREAM_UNREACHABLE"
    STREAM_INTERRUPTED = "STREAM_INTERRUPTED"
    CONFIG_INVALID = "CONFIG_INVALID"
    NO_UPSTREAM_KEYS = "NO_UPSTREAM_KEYS"
    ENV_KEYS_DIFFER = "ENV_KEYS_DIFFER"
    ENV_KEY_MALFORMED = "ENV_KEY_MALFORMED"
    DOTENV_NOT_LOADED = "DOTENV_NOT_LOADED"
    VERTEX_MODE_SET = "VERTEX_MODE_SET"
    ENV_PROXY_IGNORED = "ENV_PROXY_IGNORED"
    PROXY_UNREACHABLE = "PROXY_UNREACHABLE"
    DNS_FAILED = "DNS_FAILED"
    TCP_FAILED = "TCP_FAILED"
    TLS_FAILED = "TLS_FAILED"
    GATEWAY_UNREACHABLE = "GATEWAY_UNREACHABLE"
    GATEWAY_ROUND_TRIP_FAILED = "GATEWAY_ROUND_TRIP_FAILED"
    PROVIDER_RATE_LIMITED = "PROVIDER_RATE_LIMITED"
    PROVIDER_KEY_INVALID = "PROVIDER_KEY_INVALID"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    PROVIDER_REFUSED = "PROVIDER_REFUSED"
    PROVIDER_UNSUPPORTED = "PROVIDER_UNSUPPORTED"
    PROVIDER_KEYS_RESTING = "PROVIDER_KEYS_RESTING"
    OPENAI_REQUEST_INVALID = "OPENAI_REQUEST_INVALID"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    INVALID_REQUEST = "INVALID_REQUEST"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    MALFORMED_JSON = "MALFORMED_JSON"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    BODY_UNREADABLE = "BODY_UNREADABLE"
    BODY_TIMEOUT = "BODY_TIMEOUT"
    MODEL_NAME_INVALID = "MODEL_NAME_INVALID"
    PATH_INVALID = "PATH_INVALID"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_INVALID = "TOKEN_INVALID"
    GOOGLE_KEY_SENT = "GOOGLE_KEY_SENT"
    UNKNOWN_ROUTE = "UNKNOWN_ROUTE"
    KEY_REVOKED = "KEY_REVOKED"
    KEY_EXPIRED = "KEY_EXPIRED"
    KEY_DISABLED = "KEY_DISABLED"
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED"
    MODEL_NOT_ALLOWED = "MODEL_NOT_ALLOWED"
    KEY_RATE_LIMITED = "KEY_RATE_LIMITED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    VKEY_NOT_FOUND = "VKEY_NOT_FOUND"
    VKEY_CONFLICT = "VKEY_CONFLICT"
    LEDGER_DISABLED = "LEDGER_DISABLED"
    ADMIN_ONLY = "ADMIN_ONLY"
    GATEWAY_FAULT = "GATEWAY_FAULT"
    UPLOAD_UNKNOWN = "UPLOAD_UNKNOWN"
    KEY_HELD = "KEY_HELD"
    UPSTREAM_KEY_MALFORMED = "UPSTREAM_KEY_MALFORMED"
    UPSTREAM_KEY_DUPLICATE = "UPSTREAM_KEY_DUPLICATE"
    UPSTREAM_KEY_UNCHECKED = "UPSTREAM_KEY_UNCHECKED"
    UPSTREAM_KEY_UNKNOWN = "UPSTREAM_KEY_UNKNOWN"
    IDEMPOTENCY_KEY_INVALID = "IDEMPOTENCY_KEY_INVALID"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_IN_FLIGHT = "IDEMPOTENCY_IN_FLIGHT"
    LIVE_TOO_MANY_SESSIONS = "LIVE_TOO_MANY_SESSIONS"
    LIVE_IDLE = "LIVE_IDLE"
    LIVE_TOO_LONG = "LIVE_TOO_LONG"
    LIVE_PROJECTS_FULL = "LIVE_PROJECTS_FULL"
    HEDGE_CANCELLED = "HEDGE_CANCELLED"
    GUARD_BLOCKED = "GUARD_BLOCKED"
    GUARD_DENIED = "GUARD_DENIED"
    GUARD_PROMPT_TOO_LONG = "GUARD_PROMPT_TOO_LONG"
    GUARD_TOOL_NOT_ALLOWED = "GUARD_TOOL_NOT_ALLOWED"
    GUARD_MODALITY_NOT_ALLOWED = "GUARD_MODALITY_NOT_ALLOWED"
    GUARD_INJECTION = "GUARD_INJECTION"
    LIVE_TOKEN_INVALID = "LIVE_TOKEN_INVALID"
    LIVE_TOKEN_SPENT = "LIVE_TOKEN_SPENT"
    LIVE_TOKEN_BAD_REQUEST = "LIVE_TOKEN_BAD_REQUEST"


@dataclass(frozen=True)
class Problem:
    id: ProblemId
    en: str
    zh: str
    steps: tuple[tuple[str, str], ...] = ()  # numbered fix steps for doctor: (en, zh) each
    status: int = 0  # the HTTP status when gemgate answers with it (0: doctor's only)
    message: str = ""  # gemgate's own error message (upstream errors keep Google's)
    openai_code: str | None = None  # the `code` OpenAI clients branch on; else the id
    fallback: bool = False  # another model of the chain, or a provider, may do better

    def hint(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def fix(self, lang: str) -> list[str]:
        return [zh if lang == "zh" else en for en, zh in self.steps]

    @property
    def code(self) -> str:
        """OpenAI's error `code` for it."""
        return self.openai_code or self.id.lower()


def _table(*problems: Problem) -> dict[ProblemId, Problem]:
    return {p.id: p for p in problems}


PROBLEMS = _table(
    # ---- upstream key and project faults -------------------------------------------------
    Problem(ProblemId.API_KEY_INVALID,
            "Google rejects an upstream key as invalid (deleted, mistyped or from another "
            "service); a running gemgate takes it out of rotation. Replace it in the "
            "configuration.",
            "Google 认为某个上游密钥无效（已删除、输错或不是 Gemini 的密钥），运行中的 gemgate "
            "会停用它。请在配置中替换该密钥。",
            steps=(
                   ('Open https://aistudio.google.com/apikey and check the key still exists; '
                    'create a new one if not.',
                    '打开 https://aistudio.google.com/apikey，确认该密钥仍然存在；不存在则新建一个。'),
                   ('Copy it again without spaces or quotes, and replace it in GEMINI_API_KEYS or '
                    'projects: in gemgate.yaml.',
                    '重新复制（不要带空格或引号），替换 GEMINI_API_KEYS 或 '
                    'gemgate.yaml 的 projects: 中的旧密钥。'),
                   ('Run gemgate doctor again.',
                    '再次运行 gemgate doctor。'))),
    Problem(ProblemId.SERVICE_DISABLED,
            "The Generative Language API is not enabled in this key's Google Cloud project. "
            "Enable it at the console link in the message, wait a few minutes, and gemgate "
            "will bring the project back by itself.",
            "该密钥所属的 Google Cloud 项目没有启用 Generative Language API。请打开错误信息中的"
            "控制台链接启用它，几分钟后 gemgate 会自动恢复该项目。",
            steps=(
                   ('Open the console link shown (it names the project number) and press Enable.',
                    '打开上面给出的控制台链接（其中带有项目编号），点击“启用”。'),
                   ('Wait two to five minutes for it to propagate, then run gemgate doctor again.',
                    '等待 2–5 分钟生效，然后再次运行 gemgate doctor。'))),
    Problem(ProblemId.CONSUMER_SUSPENDED,
            "Google has suspended this key or its project; a running gemgate stops using it. "
            "Check the project in Google Cloud console (billing, policy notices) or use another "
            "project.",
            "Google 已暂停该密钥或其项目，运行中的 gemgate 会停用它。请在 Google Cloud 控制台"
            "检查该项目（结算、政策通知），或改用其他项目。",
            steps=(
                   ('Open Google Cloud console for this project and read the notices (billing, '
                    'policy).',
                    '在 Google Cloud 控制台打开该项目，查看通知（结算、政策）。'),
                   ('Until it is cleared, remove the key from gemgate or use a key from another '
                    'project.',
                    '在问题解决前，从 gemgate 中移除该密钥，或改用其他项目的密钥。'))),
    Problem(ProblemId.API_KEY_RESTRICTED,
            "The upstream key has API, IP or referrer restrictions that block this call. Allow "
            "the Generative Language API and gemgate's outbound IP in the key's restrictions.",
            "上游密钥设置了 API、IP 或引用来源限制，拦截了这次调用。请在密钥限制中允许 "
            "Generative Language API 和 gemgate 的出口 IP。"),
    Problem(ProblemId.LOCATION_UNSUPPORTED,
            "Google refused the call because the request comes from a region where the Gemini "
            "API is not offered. Route this project through a proxy in a supported region "
            "(projects.<name>.proxy in gemgate.yaml).",
            "Google 拒绝了请求：请求来自不提供 Gemini API 的地区。请为该项目配置位于支持地区的"
            "代理（gemgate.yaml 中的 projects.<name>.proxy）。",
            steps=(
                   ('Give this project a proxy in a supported region: projects: - name: … proxy: '
                    'socks5://host:port.',
                    '为该项目配置位于支持地区的代理：projects: - name: … proxy: socks5://主机:端口。'),
                   ('Check the region list at '
                    'https://ai.google.dev/gemini-api/docs/available-regions.',
                    '在 https://ai.google.dev/gemini-api/docs/available-regions 查看支持的地区。'),
                   ('Run gemgate doctor again: the network and key checks go through the proxy.',
                    '再次运行 gemgate doctor：网络与密钥检查都会经过该代理。'))),
    Problem(ProblemId.FREE_TIER_UNAVAILABLE,
            "The Gemini API free tier is not available in this country; enable billing on the "
            "project to use it.",
            "该国家或地区不提供 Gemini API 免费层；请为该项目开通结算后再使用。",
            steps=(
                   ('Enable billing for the project in Google AI Studio (Settings → Plan / '
                    'Billing).',
                    '在 Google AI Studio 为该项目开通结算（设置 → 套餐 / 结算）。'),
                   ('Or reach Google through a proxy in a country where the free tier is offered.',
                    '或者通过位于提供免费层的国家的代理访问 Google。'),
                   ("Set the project's tier: in gemgate.yaml so gemgate paces it by the right "
                    "limits.",
                    '在 gemgate.yaml 中设置该项目的 tier:，让 gemgate 按正确的限额调度。'))),
    Problem(ProblemId.KEY_IP_RESTRICTED,
            "The key has an IP address restriction that does not include the address this "
            "machine reaches Google from.",
            "该密钥设置了 IP 地址限制，其中不包含本机访问 Google 时使用的出口地址。",
            steps=(("In Google Cloud console → APIs & Services → Credentials, open the key.",
                    "在 Google Cloud 控制台 → API 和服务 → 凭据 中打开该密钥。"),
                   ("Add this machine's outbound IP (or the proxy's) under Application "
                    "restrictions → IP addresses, or set the restriction to None.",
                    "在“应用限制 → IP 地址”中加入本机（或代理）的出口 IP，或将限制设为“无”。"))),
    Problem(ProblemId.KEY_REFERRER_RESTRICTED,
            "The key only accepts calls from certain websites (HTTP referrer restriction); a "
            "server such as gemgate sends no referrer.",
            "该密钥只接受来自特定网站的调用（HTTP 引用来源限制）；gemgate 这样的服务器不会发送"
            "引用来源。",
            steps=(("Open the key in Google Cloud console → Credentials.",
                    "在 Google Cloud 控制台 → 凭据 中打开该密钥。"),
                   ("Change Application restrictions from Websites to IP addresses (gemgate's "
                    "outbound IP) or None.",
                    "把“应用限制”从“网站”改为“IP 地址”（gemgate 的出口 IP）或“无”。"))),
    Problem(ProblemId.KEY_API_RESTRICTED,
            "The key's API restrictions do not include the Generative Language API.",
            "该密钥的 API 限制中没有包含 Generative Language API。",
            steps=(("Open the key in Google Cloud console → Credentials → API restrictions.",
                    "在 Google Cloud 控制台 → 凭据 → API 限制 中打开该密钥。"),
                   ("Add Generative Language API to the allowed APIs (or choose Don't restrict "
                    "key), save, and wait a few minutes.",
                    "把 Generative Language API 加入允许的 API（或选择“不限制密钥”），保存后等待"
                    "几分钟。"))),
    # ---- quota and load -------------------------------------------------------------------
    Problem(ProblemId.QUOTA_EXHAUSTED,
            "A Google quota ran out for this project and model (see QuotaFailure for which one). "
            "Quotas are per project, not per key: add keys from other projects, or wait for "
            "the RetryInfo delay.",
            "该项目在该模型上的 Google 配额已用完（具体是哪项见 QuotaFailure）。配额按项目计算，"
            "而不是按密钥：请添加来自其他项目的密钥，或等待 RetryInfo 给出的时间。",
            steps=(
                   ('Wait for the retry delay shown; per-day quotas reset at midnight Pacific '
                    'time.',
                    '等待上面给出的重试延迟；按天的配额在太平洋时间午夜重置。'),
                   ('Add keys from other Google Cloud projects: keys of the same project share '
                    'one quota.',
                    '添加来自其他 Google Cloud 项目的密钥：同一项目的密钥共享同一份配额。'),
                   ('Or enable billing (Tier 1) for higher limits; see your limits in AI Studio.',
                    '或开通结算（Tier 1）获得更高限额；在 AI Studio 查看当前限额。'))),
    Problem(ProblemId.ALL_PROJECTS_COOLING,
            "Every upstream project is waiting out a Google quota limit. Retry after the "
            "RetryInfo delay, or add keys from more Google Cloud projects.",
            "所有上游项目都在等待 Google 配额恢复。请在 RetryInfo 给出的时间后重试，或添加更多"
            " Google Cloud 项目的密钥。"),
    Problem(ProblemId.NO_QUOTA_ROOM,
            "gemgate held the request until its deadline, but no project had quota room for this "
            "model (gemgate admits requests so Google's limits are never tripped). Retry after "
            "RetryInfo's delay, raise the priority, allow fallback, or add projects.",
            "gemgate 一直为该请求等待配额，直到时限用尽，但没有项目有该模型的配额余量"
            "（gemgate 会控制请求节奏，避免触发 Google 的限额）。请在 RetryInfo 给出的时间后"
            "重试、提高优先级、允许模型降级，或添加更多项目。"),
    Problem(ProblemId.BAD_PRIORITY,
            "x-gemgate-priority must be one of high, normal, low, batch.",
            "x-gemgate-priority 只能是 high、normal、low 或 batch 之一。"),
    Problem(ProblemId.NO_HEALTHY_KEYS,
            "No upstream key is usable: all are disabled (see /admin/pool for each reason). Fix "
            "or replace the keys; disabled keys are re-checked and return by themselves.",
            "没有可用的上游密钥：全部已被停用（原因见 /admin/pool）。请修复或更换密钥；被停用的"
            "密钥会定期复查并自动恢复。"),
    Problem(ProblemId.MODEL_OVERLOADED,
            "Google reports the model is overloaded (503). gemgate retried within the deadline; "
            "try again shortly or use a lighter model (e.g. a flash variant).",
            "Google 报告该模型过载（503）。gemgate 已在时限内重试；请稍后再试，或改用更轻量的模型"
            "（例如 flash 系列）。",
            steps=(
                   ("Retry in a minute: overload is on Google's side and passes.",
                    '一分钟后重试：过载发生在 Google 一侧，会自行恢复。'),
                   ('Keep fallback on (gemini-2.5-flash-lite answers when flash is overloaded).',
                    '保持模型降级开启（flash 过载时由 gemini-2.5-flash-lite 回答）。'))),
    Problem(ProblemId.UPSTREAM_INTERNAL,
            "Google had an internal error (500). gemgate retried within the deadline; retry the "
            "request, and shorten very long inputs if it persists.",
            "Google 内部错误（500）。gemgate 已在时限内重试；请重试请求，"
            "若持续出现请缩短过长的输入。"),
    Problem(ProblemId.UPSTREAM_TIMEOUT,
            "Google did not answer in time. Raise the client's timeout or gemgate's deadline, "
            "or ask for a shorter answer.",
            "Google 未能及时响应。请调大客户端超时或 gemgate 的时限，或请求更短的回答。"),
    Problem(ProblemId.UPSTREAM_UNREACHABLE,
            "gemgate could not reach Google (connection refused, reset or DNS failure). Check "
            "the network or the project's proxy (HTTPS/SOCKS5) from the gateway host.",
            "gemgate 无法连接到 Google（连接被拒绝、被重置或 DNS 失败）。请在网关所在主机上检查"
            "网络或该项目的代理（HTTPS/SOCKS5）。"),
    Problem(ProblemId.STREAM_INTERRUPTED,
            "The upstream stream broke after part of the answer was sent; what arrived is "
            "complete up to this point. Retry the request to get a whole answer.",
            "上游流在已发送部分回答后中断；此前收到的内容是完整的。请重试以获得完整回答。"),
    # ---- the machine and its network (gemgate doctor) ------------------------------------
    Problem(ProblemId.CONFIG_INVALID,
            "The configuration (gemgate.yaml, the environment or .env) has errors; each is "
            "listed with where it is.",
            "配置（gemgate.yaml、环境变量或 .env）有错误；每一项都列出了所在位置。",
            steps=(("Fix each listed item; keys are shown masked, so compare their first and "
                    "last four characters.",
                    "逐项修正所列问题；密钥以掩码显示，请对照其首尾四个字符。"),
                   ("Run gemgate doctor again.", "再次运行 gemgate doctor。"))),
    Problem(ProblemId.NO_UPSTREAM_KEYS,
            "No Gemini key was found: GEMINI_API_KEY(S) is not set in this shell or in .env, and "
            "no projects: are configured.",
            "没有找到 Gemini 密钥：当前 shell 和 .env 中都没有设置 GEMINI_API_KEY(S)，"
            "也没有配置 projects:。",
            steps=(("Create a key at https://aistudio.google.com/apikey.",
                    "在 https://aistudio.google.com/apikey 创建密钥。"),
                   ("export GEMINI_API_KEYS=project-a:KEY1,project-b:KEY2 (or put the line in "
                    ".env next to where you run gemgate), or list projects: in gemgate.yaml.",
                    "执行 export GEMINI_API_KEYS=项目a:密钥1,项目b:密钥2（或把这一行写进运行 "
                    "gemgate 的目录下的 .env），或在 gemgate.yaml 中列出 projects:。"),
                   ("Open a new terminal if you edited a shell profile, then run gemgate doctor.",
                    "如果修改的是 shell 配置文件，请新开一个终端，再运行 gemgate doctor。"))),
    Problem(ProblemId.ENV_KEYS_DIFFER,
            "GEMINI_API_KEY and GOOGLE_API_KEY are both set, to different keys. Google's SDKs "
            "use GOOGLE_API_KEY when both are set, which is rarely the one meant.",
            "GEMINI_API_KEY 和 GOOGLE_API_KEY 同时设置且不相同。两者都存在时 Google 的 SDK 会使用 "
            "GOOGLE_API_KEY，这通常不是你想用的那个。",
            steps=(("Keep one: unset GOOGLE_API_KEY (or make both the same key).",
                    "只保留一个：执行 unset GOOGLE_API_KEY（或让两者相同）。"),
                   ("Look for the other one in ~/.bashrc, ~/.zshrc, .env files and IDE run "
                    "configurations.",
                    "在 ~/.bashrc、~/.zshrc、.env 文件和 IDE 运行配置中查找另一个。"))),
    Problem(ProblemId.ENV_KEY_MALFORMED,
            "A key in the environment has quotes, spaces or other characters no key has "
            "(often from copy-paste or a quoted .env line). gemgate strips surrounding quotes "
            "itself; SDKs and other tools do not.",
            "环境变量中的密钥带有引号、空格或密钥不会包含的字符（常见于复制粘贴或 .env 中带引号"
            "的写法）。gemgate 会自行去掉两侧引号，但 SDK 和其他工具不会。",
            steps=(("Set it again with the bare key: export GEMINI_API_KEY=AIza… (no quotes, no "
                    "spaces).",
                    "重新设置为纯密钥：export GEMINI_API_KEY=AIza…（不带引号和空格）。"),
                   ("In .env write GEMINI_API_KEY=AIza… on one line, without quotes.",
                    "在 .env 中写成一行 GEMINI_API_KEY=AIza…，不加引号。"))),
    Problem(ProblemId.DOTENV_NOT_LOADED,
            ".env sets a key that this shell does not have. gemgate reads .env itself, but "
            "your own programs see it only if they load it.",
            ".env 中设置了当前 shell 中没有的密钥。gemgate 会自己读取 .env，但你自己的程序只有"
            "在加载它之后才能看到。",
            steps=(("In Python call load_dotenv() (python-dotenv) before creating the client.",
                    "在 Python 中创建客户端之前调用 load_dotenv()（python-dotenv）。"),
                   ("Or export the variable in the shell (set -a; source .env; set +a).",
                    "或在 shell 中导出该变量（set -a; source .env; set +a）。"))),
    Problem(ProblemId.VERTEX_MODE_SET,
            "GOOGLE_GENAI_USE_VERTEXAI is set: the google-genai SDK then calls Vertex AI with "
            "Google Cloud credentials, not the Gemini API key or gemgate.",
            "设置了 GOOGLE_GENAI_USE_VERTEXAI：google-genai SDK 会改用 Google Cloud 凭据调用 "
            "Vertex AI，而不是使用 Gemini API 密钥或 gemgate。",
            steps=(("unset GOOGLE_GENAI_USE_VERTEXAI (and GOOGLE_CLOUD_PROJECT / "
                    "GOOGLE_CLOUD_LOCATION if you set them for this).",
                    "执行 unset GOOGLE_GENAI_USE_VERTEXAI（以及为此设置的 GOOGLE_CLOUD_PROJECT / "
                    "GOOGLE_CLOUD_LOCATION）。"),
                   ("Check your shell profile and .env for the line.",
                    "检查 shell 配置文件和 .env 中是否还有这一行。"))),
    Problem(ProblemId.ENV_PROXY_IGNORED,
            "HTTPS_PROXY / ALL_PROXY is set. Your SDKs and curl use it; gemgate does not — its "
            "route to Google is each project's proxy: setting.",
            "设置了 HTTPS_PROXY / ALL_PROXY。你的 SDK 和 curl 会使用它；gemgate 不会——gemgate "
            "访问 Google 使用的是每个项目的 proxy: 设置。",
            steps=(("If gemgate must go through it, add proxy: <the same URL> to each project in "
                    "gemgate.yaml.",
                    "如果 gemgate 也需要经过它，请在 gemgate.yaml 的每个项目下加上 "
                    "proxy: <同一地址>。"),
                   ("If your SDK talks to gemgate on this machine, set NO_PROXY=127.0.0.1,"
                    "localhost so those calls skip the proxy.",
                    "如果你的 SDK 访问的是本机上的 gemgate，请设置 NO_PROXY=127.0.0.1,localhost，"
                    "让这些调用绕过代理。"))),
    Problem(ProblemId.PROXY_UNREACHABLE,
            "The proxy does not accept connections (refused, wrong port, or not running).",
            "代理不接受连接（被拒绝、端口错误或代理未运行）。",
            steps=(("Start the proxy client (Clash, v2ray, …) and check its port: HTTP often "
                    "7890, SOCKS5 often 7891/1080.",
                    "启动代理客户端（Clash、v2ray 等）并核对端口：HTTP 常为 7890，SOCKS5 常为 "
                    "7891/1080。"),
                   ("Use the scheme it speaks: http:// for an HTTP proxy, socks5:// for SOCKS5.",
                    "使用与之匹配的协议前缀：HTTP 代理用 http://，SOCKS5 代理用 socks5://。"),
                   ("If it listens only on 127.0.0.1, run gemgate on the same machine.",
                    "如果它只监听 127.0.0.1，请在同一台机器上运行 gemgate。"))),
    Problem(ProblemId.DNS_FAILED,
            "The upstream host name does not resolve from here (no DNS answer, or a poisoned "
            "one).",
            "从本机无法解析上游主机名（DNS 无应答或被污染）。",
            steps=(("Check upstream_url for typos.", "检查 upstream_url 是否拼写错误。"),
                   ("Where Google is blocked, reach it through a proxy (projects: proxy:, "
                    "socks5h:// resolves names at the proxy).",
                    "在无法直接访问 Google 的地区，请通过代理访问（projects: 下的 proxy:，"
                    "socks5h:// 会在代理端解析域名）。"),
                   ("Or try another DNS server (e.g. 1.1.1.1) for this machine.",
                    "或为本机更换 DNS 服务器（例如 1.1.1.1）。"))),
    Problem(ProblemId.TCP_FAILED,
            "The upstream host resolves but does not accept a connection (refused, filtered or "
            "timed out).",
            "上游主机名可以解析，但无法建立连接（被拒绝、被过滤或超时）。",
            steps=(("Where Google is blocked, set a proxy for the project (projects: proxy:).",
                    "在无法直接访问 Google 的地区，为项目设置代理（projects: 下的 proxy:）。"),
                   ("Check that a firewall allows outbound connections to port 443.",
                    "检查防火墙是否允许访问外部 443 端口。"),
                   ("Check upstream_url's port.", "检查 upstream_url 中的端口。"))),
    Problem(ProblemId.TLS_FAILED,
            "The connection opens but the TLS handshake fails: something in the way is not "
            "Google (a captive portal, an intercepting proxy, a plain-HTTP port) or the clock is "
            "wrong.",
            "连接已建立但 TLS 握手失败：中间的某个环节不是 Google（认证网页、拦截式代理、"
            "非 HTTPS 端口），或本机时间不正确。",
            steps=(("Check the machine's date and time.", "检查本机的日期和时间。"),
                   ("Use https:// only for TLS ports; through a proxy, use its own scheme in "
                    "proxy: and keep upstream_url https://generativelanguage.googleapis.com.",
                    "只对 TLS 端口使用 https://；经过代理时，在 proxy: 中使用代理自己的协议，"
                    "upstream_url 保持 https://generativelanguage.googleapis.com。"),
                   ("If a corporate proxy inspects TLS, ask for its CA certificate to be trusted.",
                    "如果公司代理会检查 TLS，请将其 CA 证书加入信任。"))),
    Problem(ProblemId.GATEWAY_UNREACHABLE,
            "The gateway does not answer at this URL.",
            "网关在该地址上没有响应。",
            steps=(("Start it: gemgate serve (or check that it is running and its port).",
                    "启动它：gemgate serve（或确认它正在运行以及端口是否正确）。"),
                   ("From another machine, serve on 0.0.0.0 with tokens configured, and open "
                    "the port in the firewall.",
                    "从其他机器访问时，请在配置了令牌的前提下监听 0.0.0.0，"
                    "并在防火墙中放行该端口。"),
                   ("Set NO_PROXY for its address if an HTTP proxy is in effect.",
                    "如果设置了 HTTP 代理，请把网关地址加入 NO_PROXY。"))),
    Problem(ProblemId.GATEWAY_ROUND_TRIP_FAILED,
            "The gateway accepted the token but could not answer a one-token request; its own "
            "error and hint follow.",
            "网关接受了令牌，但无法完成一个单 token 的请求；下面是网关自己的错误和提示。",
            steps=(("Read the gateway's hint above, and run gemgate doctor on the gateway's "
                    "host to check its keys and network.",
                    "阅读上面网关给出的提示，并在网关所在主机上运行 gemgate doctor 检查其密钥"
                    "和网络。"),)),
    # ---- OpenAI-compatible providers (the last fallback links) ----------------------------
    Problem(ProblemId.PROVIDER_RATE_LIMITED,
            "The fallback provider rate-limited gemgate (429). Its keys rest for the time it "
            "asked; add keys or raise the limits on the provider's side.",
            "备用服务商对 gemgate 限流（429）。其密钥会按对方要求的时间暂停使用；"
            "请增加密钥或在服务商处提高限额。"),
    Problem(ProblemId.PROVIDER_KEY_INVALID,
            "The fallback provider refused gemgate's key (401/403). Check the key under "
            "providers: in the configuration; it rests for 5 minutes before another try.",
            "备用服务商拒绝了 gemgate 的密钥（401/403）。请检查配置中 providers: 下的密钥；"
            "该密钥将暂停 5 分钟后再试。"),
    Problem(ProblemId.PROVIDER_UNAVAILABLE,
            "The fallback provider failed or could not be reached (5xx, network). gemgate "
            "retried within the deadline; check its base_url and status page.",
            "备用服务商出错或无法连接（5xx、网络）。gemgate 已在时限内重试；"
            "请检查其 base_url 及服务状态页。"),
    Problem(ProblemId.PROVIDER_REFUSED,
            "The fallback provider rejected the translated request (4xx); the message quotes "
            "it. Check the model mapping under providers: (models:).",
            "备用服务商拒绝了转换后的请求（4xx）；错误信息引用了其原文。"
            "请检查 providers: 下的模型映射（models:）。"),
    Problem(ProblemId.PROVIDER_UNSUPPORTED,
            "A provider's model only generates content; counting tokens, embeddings and "
            "other methods need a Gemini model.",
            "服务商模型只支持生成内容；计数 token、向量嵌入等其他方法请使用 Gemini 模型。"),
    Problem(ProblemId.PROVIDER_KEYS_RESTING,
            "Every key of the fallback provider is resting after refusals or rate limits; "
            "retry after the delay given.",
            "备用服务商的所有密钥都因被拒或限流而暂停；请在给出的延迟后重试。"),
    # ---- the client's own request --------------------------------------------------------
    Problem(ProblemId.OPENAI_REQUEST_INVALID,
            "gemgate cannot serve this OpenAI-format request as sent; the message names the "
            "field (param). Fix it, or see README for what maps to Gemini.",
            "gemgate 无法按原样处理该 OpenAI 格式请求；错误信息指出了字段（param）。"
            "请修正，或参阅 README 中与 Gemini 的对应关系。"),
    Problem(ProblemId.MODEL_NOT_FOUND,
            "The model name is unknown or does not support this method. Check the spelling "
            "(e.g. gemini-2.5-flash) against GET /v1beta/models.",
            "模型名称不存在或不支持该方法。请对照 GET /v1beta/models 检查拼写（例如 "
            "gemini-2.5-flash）。",
            steps=(
                   ('Use the model name suggested, or one listed by GET /v1beta/models.',
                    '使用上面建议的模型名，或 GET /v1beta/models 列出的名称。'),
                   ('Run gemgate doctor --model <name> to check it.',
                    '运行 gemgate doctor --model <名称> 检查它。'))),
    Problem(ProblemId.INVALID_REQUEST,
            "Google rejected the request body; the message names the field. Fix the request.",
            "Google 拒绝了请求内容；错误信息指出了具体字段。请修正请求。"),
    Problem(ProblemId.PERMISSION_DENIED,
            "Google denied access to this resource. Files, caches and batches belong to the "
            "Google Cloud project that created them; refer to them through the same gateway.",
            "Google 拒绝访问该资源。文件、缓存和批处理任务属于创建它们的 Google Cloud 项目；"
            "请通过同一个网关引用它们。"),
    Problem(ProblemId.MALFORMED_JSON,
            "The request body is not valid JSON. Send a JSON object with Content-Type: "
            "application/json.",
            "请求体不是有效的 JSON。请以 Content-Type: application/json 发送一个 JSON 对象。"),
    Problem(ProblemId.BODY_TOO_LARGE,
            "The request body is larger than gemgate accepts (max_body_bytes). Upload large "
            "media with the Files API and refer to it by URI instead.",
            "请求体超过了 gemgate 允许的大小（max_body_bytes）。大文件请先用 Files API 上传，"
            "再通过 URI 引用。"),
    Problem(ProblemId.BODY_UNREADABLE,
            "gemgate could not read the request body: its Content-Encoding does not match its "
            "bytes, or the connection ended before the promised length. Send the body plain "
            "(or truly gzip-compressed) with a correct Content-Length.",
            "gemgate 无法读取请求体：Content-Encoding 与内容不符，或连接在约定长度之前断开。"
            "请发送未压缩（或确实经 gzip 压缩）的请求体，并给出正确的 Content-Length。"),
    Problem(ProblemId.BODY_TIMEOUT,
            "The client stopped sending the request body for longer than the gateway waits "
            "(server.body_idle_timeout_s). Check the network between client and gateway.",
            "客户端停止发送请求体的时间超过了网关的等待上限（server.body_idle_timeout_s）。"
            "请检查客户端与网关之间的网络。"),
    Problem(ProblemId.MODEL_NAME_INVALID,
            "The model name is not a valid Gemini model id: use letters, digits, '.', '-' and "
            "'_' only, e.g. gemini-2.5-flash (or <provider>/<model> for a configured provider).",
            "模型名称不是有效的 Gemini 模型 ID：只能使用字母、数字、'.'、'-' 和 '_'，例如 "
            "gemini-2.5-flash（已配置的其他提供方写作 <provider>/<model>）。"),
    Problem(ProblemId.PATH_INVALID,
            "The path holds '.' or '..' segments, an encoded '/' or '\\', or a control "
            "character. Send the path as the SDKs do: /v1beta/models/<model>:<method>.",
            "路径中含有 '.' 或 '..' 段、编码后的 '/' 或 '\\'，或控制字符。请按 SDK 的方式发送路径："
            "/v1beta/models/<model>:<method>。"),
    Problem(ProblemId.RESOURCE_NOT_FOUND,
            "No such file, cached content, batch or other resource is visible to this token. "
            "Resources belong to the tenant that created them through gemgate; use the token "
            "that created it.",
            "该 token 看不到这个文件、缓存、批处理任务或其他资源。资源属于通过 gemgate 创建它的"
            "租户；请使用创建它时的 token。"),
    Problem(ProblemId.TOKEN_MISSING,
            "No gemgate token was sent. Pass your gemgate token as the api_key (header "
            "x-goog-api-key, ?key=, or Authorization: Bearer).",
            "请求没有携带 gemgate 令牌。请把 gemgate 令牌作为 api_key 传入（x-goog-api-key 头、"
            "?key= 参数或 Authorization: Bearer）。"),
    Problem(ProblemId.TOKEN_INVALID,
            "This gemgate token is not known. Ask your gateway admin for a token, and check for "
            "stray spaces or quotes.",
            "该 gemgate 令牌无效。请向网关管理员索取令牌，并检查是否带有多余的空格或引号。",
            steps=(
                   ("Use the token the gateway's operator gave you (a gk-… virtual key or a "
                    "configured token), not a Google key.",
                    '使用网关管理员提供的令牌（gk-… 虚拟密钥或配置中的令牌），'
                    '而不是 Google 密钥。'),
                   ('Pass it with --token, or set GEMGATE_TOKEN.',
                    '通过 --token 传入，或设置 GEMGATE_TOKEN。'))),
    Problem(ProblemId.GOOGLE_KEY_SENT,
            "You sent a Google API key to gemgate. Keep Google keys in the gateway's "
            "configuration and use your gemgate token as api_key instead.",
            "你向 gemgate 发送的是 Google API 密钥。Google 密钥应只保存在网关配置中；客户端请改用"
            " gemgate 令牌作为 api_key。"),
    Problem(ProblemId.UNKNOWN_ROUTE,
            "gemgate does not serve this path. Gemini routes live under /v1beta, /v1 or "
            "/v1alpha (and /models/… as v1beta), OpenAI's under /v1. Official SDKs take the "
            "gateway's root URL as base_url; a client that appends paths such as "
            "/chat/completions itself needs <gateway>/v1 (OpenAI) or <gateway>/v1beta (Gemini).",
            "gemgate 不提供该路径。Gemini 接口位于 /v1beta、/v1 或 /v1alpha 下（/models/… 按 "
            "v1beta 处理），OpenAI 接口位于 /v1 下。官方 SDK 的 base_url 设为网关根地址即可；"
            "自行拼接 /chat/completions 等路径的客户端需要 <网关>/v1（OpenAI）或 <网关>/v1beta"
            "（Gemini）。"),
    # ---- virtual keys, budgets and the ledger ---------------------------------------------
    Problem(ProblemId.KEY_REVOKED,
            "This gemgate key has been revoked and will never work again. Ask your gateway "
            "admin for a new key.",
            "该 gemgate 密钥已被吊销，无法再使用。请向网关管理员申请新的密钥。"),
    Problem(ProblemId.KEY_EXPIRED,
            "This gemgate key has expired. Ask your gateway admin to extend it or issue a new one.",
            "该 gemgate 密钥已过期。请联系网关管理员延长有效期或签发新的密钥。"),
    Problem(ProblemId.KEY_DISABLED,
            "This gemgate key is disabled for now. Ask your gateway admin to enable it again.",
            "该 gemgate 密钥目前已被停用。请联系网关管理员重新启用。"),
    Problem(ProblemId.IP_NOT_ALLOWED,
            "This gemgate key may only be used from certain IP addresses, and this request came "
            "from another. Call from an allowed network, or ask the admin to add your address.",
            "该 gemgate 密钥只允许从特定 IP 地址使用，而本次请求来自其他地址。请在允许的网络中"
            "调用，或请管理员添加你的地址。"),
    Problem(ProblemId.MODEL_NOT_ALLOWED,
            "This gemgate key may not use this model. Use one of the models the message lists, "
            "or ask the admin to allow this one.",
            "该 gemgate 密钥无权使用此模型。请改用错误信息中列出的模型，或请管理员开放此模型。"),
    Problem(ProblemId.KEY_RATE_LIMITED,
            "This gemgate key is over its own per-minute limit (RPM/TPM) set by the admin. Wait "
            "for the RetryInfo delay, or slow down.",
            "该 gemgate 密钥超出了管理员为它设定的每分钟限额（RPM/TPM）。请等待 RetryInfo "
            "给出的时间后重试，或降低请求速度。"),
    Problem(ProblemId.BUDGET_EXCEEDED,
            "This gemgate key has used up its budget for the period. It works again when the "
            "period resets (see the message), or when the admin raises the budget.",
            "该 gemgate 密钥在本周期内的预算已用完。周期重置后（见错误信息）或管理员提高预算后"
            "即可继续使用。"),
    Problem(ProblemId.VKEY_NOT_FOUND,
            "No virtual key has this id or name. List keys with GET /admin/vkeys or "
            "`gemgate vkeys list`.",
            "没有该 ID 或名称的虚拟密钥。可用 GET /admin/vkeys 或 `gemgate vkeys list` 查看。"),
    Problem(ProblemId.VKEY_CONFLICT,
            "The change conflicts with the key's state: the name is taken by another active key, "
            "or the key is revoked.",
            "该操作与密钥当前状态冲突：名称已被其他有效密钥使用，或该密钥已被吊销。"),
    Problem(ProblemId.LEDGER_DISABLED,
            "Virtual keys and usage reports need the ledger, which is disabled in this "
            "configuration (ledger.enabled).",
            "虚拟密钥和用量报表依赖账本，而当前配置中账本已关闭（ledger.enabled）。"),
    Problem(ProblemId.ADMIN_ONLY,
            "This endpoint needs the admin key (GEMGATE_ADMIN_KEY) as a Bearer token.",
            "该接口需要管理员密钥（GEMGATE_ADMIN_KEY）作为 Bearer 令牌。"),
    Problem(ProblemId.GATEWAY_FAULT,
            "gemgate itself failed on this request; nothing was charged. Retry, and report the "
            "request id with the gateway log line of the same id.",
            "gemgate 自身处理该请求时出错，未产生费用。请重试，并附上请求 ID 及网关日志中同一 ID "
            "的记录进行反馈。"),
    Problem(ProblemId.UPLOAD_UNKNOWN,
            "This upload session is unknown or expired. Start the upload again.",
            "该上传会话不存在或已过期。请重新开始上传。"),
    # ---- the operator's changes to the pool (console, admin API) -------------------------
    Problem(ProblemId.KEY_HELD,
            "An operator took this upstream key out of use; the prober leaves it alone. Enable "
            "it again in the console (Upstream) or with POST /admin/upstream/keys/ID/enable.",
            "运维人员停用了该上游密钥，探测不会自动恢复它。可在控制台（上游）或通过 "
            "POST /admin/upstream/keys/ID/enable 重新启用。"),
    Problem(ProblemId.UPSTREAM_KEY_MALFORMED,
            "This line is not an API key (spaces, quotes or a placeholder from the docs); it "
            "was not added. Copy the key again from https://aistudio.google.com/apikey.",
            "这一行不是 API 密钥（含空格、引号，或是文档中的占位符），未添加。请从 "
            "https://aistudio.google.com/apikey 重新复制密钥。"),
    Problem(ProblemId.UPSTREAM_KEY_DUPLICATE,
            "This key is already in the pool; nothing changed.",
            "该密钥已在密钥池中，未做改动。"),
    Problem(ProblemId.UPSTREAM_KEY_UNCHECKED,
            "Google could not be reached to check the key; it was added and the prober will "
            "judge it on the next call. Check the network or proxy with gemgate doctor.",
            "无法连接 Google 校验该密钥；已先加入，后续调用会判断其是否可用。请用 gemgate doctor "
            "检查网络或代理。"),
    Problem(ProblemId.UPSTREAM_KEY_UNKNOWN,
            "No upstream key has this id; ids are listed by GET /admin/pool.",
            "没有该 ID 的上游密钥；ID 可从 GET /admin/pool 查到。", status=404),
    # ---- idempotent requests (pipeline/idempotency.py) -----------------------------------
    Problem(ProblemId.IDEMPOTENCY_KEY_INVALID,
            "The Idempotency-Key header is empty or longer than 255 characters.",
            "Idempotency-Key 请求头为空或超过 255 个字符。", status=400,
            message="Idempotency-Key must be 1 to 255 characters."),
    Problem(ProblemId.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was already used for a different request (another path or "
            "body). Use a new key for each distinct request.",
            "该 Idempotency-Key 已用于另一个不同的请求（路径或请求体不同）。每个不同的请求请使用"
            "新的键。", status=400,
            message="Idempotency-Key reused with a different request."),
    Problem(ProblemId.IDEMPOTENCY_IN_FLIGHT,
            "The first request with this Idempotency-Key is still being answered; retry in a "
            "moment to get its answer.",
            "使用该 Idempotency-Key 的第一个请求仍在处理中；请稍后重试以获取其结果。",
            status=409, message="A request with this Idempotency-Key is still in flight."),
    # ---- Live sessions (edges/live.py) ---------------------------------------------------
    Problem(ProblemId.LIVE_TOO_MANY_SESSIONS,
            "This tenant already has the most Live sessions open at once "
            "(live.max_sessions_per_tenant). Close one, or ask the operator to raise it.",
            "该租户同时打开的 Live 会话已达上限（live.max_sessions_per_tenant）。请先关闭一个，"
            "或请运维人员调高上限。", status=429, message="Too many Live sessions open."),
    Problem(ProblemId.LIVE_IDLE,
            "The Live session was closed after no frame went either way for "
            "live.idle_timeout_s. Reconnect (with a resumption handle to go on).",
            "Live 会话在 live.idle_timeout_s 内双向都没有数据，已被关闭。请重新连接（带上会话恢复"
            "句柄即可继续）。", message="Live session idle too long."),
    Problem(ProblemId.LIVE_TOO_LONG,
            "The Live session reached live.max_duration_s and was closed. Reconnect with a "
            "resumption handle to go on.",
            "Live 会话达到 live.max_duration_s 上限，已被关闭。请带上会话恢复句柄重新连接以继续。",
            message="Live session reached its maximum duration."),
    # ---- Guardrails (guardrails/, pipeline/guardrails.py) -------------------------------
    Problem(ProblemId.GUARD_BLOCKED,
            "The prompt contains sensitive data of a kind this key may not send (named in the "
            "message; the data itself is never repeated). Remove it, or ask the operator which "
            "kinds the guardrails policy blocks.",
            "提示中含有该密钥不允许发送的敏感数据（种类见错误信息；数据本身不会被复述）。请删除这些"
            "内容，或向运维人员确认防护策略拦截哪些种类。", status=400,
            message="The prompt contains sensitive data that may not be sent."),
    Problem(ProblemId.GUARD_DENIED,
            "The prompt matches one of the operator's deny rules (named in the message). "
            "Rephrase it, or ask the operator about the rule.",
            "提示命中了运维人员设置的拒绝规则（规则名见错误信息）。请修改措辞，或向运维人员咨询该规则。",
            status=400, message="The prompt matches a deny rule."),
    Problem(ProblemId.GUARD_PROMPT_TOO_LONG,
            "The prompt is longer than this key's guardrails allow (max_prompt_tokens). "
            "Shorten it, or ask the operator to raise the limit.",
            "提示长度超过该密钥防护策略允许的上限（max_prompt_tokens）。请缩短提示，或请运维人员"
            "调高上限。", status=400, message="The prompt is too long for this key."),
    Problem(ProblemId.GUARD_TOOL_NOT_ALLOWED,
            "The request declares a tool this key may not use (allowed_tools). Remove it, or "
            "ask the operator to allow it.",
            "请求声明了该密钥不允许使用的工具（allowed_tools）。请删除该工具，或请运维人员放行。",
            status=403, message="A tool in the request is not allowed for this key."),
    Problem(ProblemId.GUARD_MODALITY_NOT_ALLOWED,
            "The request carries a kind of media this key may not send (allowed_modalities: "
            "image, audio, video, document). Remove it, or ask the operator to allow it.",
            "请求包含该密钥不允许发送的媒体类型（allowed_modalities：image、audio、video、"
            "document）。请删除该内容，或请运维人员放行。", status=403,
            message="A kind of media in the request is not allowed for this key."),
    Problem(ProblemId.GUARD_INJECTION,
            "The prompt looks like an attempt to override the model's instructions (the "
            "guardrails' injection screen). If it is legitimate, rephrase it or ask the "
            "operator to relax the screen for this key.",
            "提示看起来像是试图改写模型指令的提示注入（防护策略的注入筛查）。如属正常内容，请换种说法，"
            "或请运维人员为该密钥放宽筛查。", status=400,
            message="The prompt looks like a prompt-injection attempt."),
    Problem(ProblemId.HEDGE_CANCELLED,
            "A hedged attempt (hedging: in the configuration) lost the race to another "
            "project's answer and was cancelled; the call was answered by the winner.",
            "对冲请求中的这次尝试（配置项 hedging:）慢于另一个项目的回答，已被取消；调用由胜出的"
            "回答完成。", status=499, message="Hedged attempt cancelled."),
    Problem(ProblemId.LIVE_PROJECTS_FULL,
            "Every project that serves this model already has as many Live sessions open as "
            "Google allows it (projects[].live_sessions, or the tier's limit). Retry shortly, "
            "or add a project.",
            "所有可服务该模型的项目都已达到 Google 允许的同时 Live 会话数（projects[].live_sessions"
            " 或所在层级的上限）。请稍后重试，或增加项目。", status=429,
            message="No project has room for another Live session."),
    Problem(ProblemId.LIVE_TOKEN_INVALID,
            "This ephemeral token is unknown or has expired. Mint a new one with "
            "client.auth_tokens.create() through gemgate.",
            "该临时令牌不存在或已过期。请通过 gemgate 调用 client.auth_tokens.create() 重新生成。",
            status=401, message="Ephemeral token invalid or expired."),
    Problem(ProblemId.LIVE_TOKEN_SPENT,
            "This ephemeral token has no uses left, or its time to start new sessions "
            "(newSessionExpireTime) has passed. Mint a new one.",
            "该临时令牌的可用次数已用完，或已过开启新会话的时限（newSessionExpireTime）。请重新生成。",
            status=401, message="Ephemeral token spent."),
    Problem(ProblemId.LIVE_TOKEN_BAD_REQUEST,
            "The auth_tokens request is malformed: uses must be a positive integer, times "
            "RFC 3339 in the future and within live.token_max_lifetime_s, and the setup's "
            "model one this key may use.",
            "auth_tokens 请求格式有误：uses 须为正整数，时间须为未来的 RFC 3339 时间且不超过 "
            "live.token_max_lifetime_s，setup 中的模型须为该密钥可用的模型。", status=400,
            message="Invalid auth token request."),
)



def _wire(status: int, message: str = "", openai_code: str | None = None,
          fallback: bool = False) -> dict[str, object]:
    return {"status": status, "message": message, "openai_code": openai_code,
            "fallback": fallback}


_KEY = "invalid_api_key"
_RATE = "rate_limit_exceeded"
P = ProblemId
# How each problem goes on the wire when gemgate answers with it. (Problems only Google or
# doctor report keep status 0 and Google's own message.)
_WIRE: dict[ProblemId, dict[str, object]] = {
    P.TOKEN_MISSING: _wire(401, "No gemgate token was sent with the request.", _KEY),
    P.TOKEN_INVALID: _wire(401, "The gemgate token is not valid.", _KEY),
    P.GOOGLE_KEY_SENT: _wire(401, "A Google API key was sent where a gemgate token belongs.",
                             _KEY),
    P.KEY_REVOKED: _wire(401, "This gemgate key has been revoked.", _KEY),
    P.KEY_EXPIRED: _wire(401, "This gemgate key has expired.", _KEY),
    P.KEY_DISABLED: _wire(403, "This gemgate key is disabled."),
    P.IP_NOT_ALLOWED: _wire(403, "This gemgate key may not be used from this IP address."),
    P.MODEL_NOT_ALLOWED: _wire(403, "This key may not use this model."),
    P.KEY_RATE_LIMITED: _wire(429, "This key is over its own rate limit.", _RATE),
    P.BUDGET_EXCEEDED: _wire(429, "This key has spent its budget.", "insufficient_quota"),
    P.MALFORMED_JSON: _wire(400, "Invalid JSON payload received."),
    P.BODY_TOO_LARGE: _wire(413, "The request body is too large."),
    P.BODY_UNREADABLE: _wire(400, "The request body could not be read."),
    P.BODY_TIMEOUT: _wire(408, "The request body did not arrive in time."),
    P.MODEL_NAME_INVALID: _wire(400, "The model name is not a valid model id."),
    P.PATH_INVALID: _wire(400, "The request path has '.' or '..' segments, or encoded "
                               "separators or control characters."),
    P.RESOURCE_NOT_FOUND: _wire(404, "Requested entity was not found."),
    P.BAD_PRIORITY: _wire(400, "Unknown priority."),
    P.OPENAI_REQUEST_INVALID: _wire(400, "The request is not a valid OpenAI request."),
    P.INVALID_REQUEST: _wire(400, "The request is not valid."),
    P.PERMISSION_DENIED: _wire(403),
    P.MODEL_NOT_FOUND: _wire(404, "", "model_not_found"),
    P.QUOTA_EXHAUSTED: _wire(429, "", _RATE, fallback=True),
    P.ALL_PROJECTS_COOLING: _wire(429, "All upstream projects are waiting out Google quota "
                                       "limits.", _RATE, fallback=True),
    P.NO_QUOTA_ROOM: _wire(429, "No upstream project has quota room for this model before the "
                                "deadline.", _RATE, fallback=True),
    P.NO_HEALTHY_KEYS: _wire(503, "No upstream key is available: every key is disabled.",
                             fallback=True),
    P.MODEL_OVERLOADED: _wire(503, "", fallback=True),
    P.UPSTREAM_INTERNAL: _wire(500, "", fallback=True),
    P.UPSTREAM_TIMEOUT: _wire(504, "Google did not answer before the request's deadline."),
    P.UPSTREAM_UNREACHABLE: _wire(502, "gemgate could not reach Google.", fallback=True),
    P.STREAM_INTERRUPTED: _wire(503, "The upstream stream was interrupted."),
    P.PROVIDER_RATE_LIMITED: _wire(429, "", _RATE, fallback=True),
    P.PROVIDER_KEY_INVALID: _wire(502, "", fallback=True),
    P.PROVIDER_UNAVAILABLE: _wire(502, "gemgate could not reach the fallback provider.",
                                  fallback=True),
    P.PROVIDER_REFUSED: _wire(400),
    P.PROVIDER_UNSUPPORTED: _wire(400, "A provider's model answers only generateContent "
                                       "calls."),
    P.PROVIDER_KEYS_RESTING: _wire(429, "Every key of the fallback provider is resting.",
                                   _RATE, fallback=True),
    P.UNKNOWN_ROUTE: _wire(404, "gemgate does not serve this path."),
    P.ADMIN_ONLY: _wire(403, "The admin key is required."),
    P.LEDGER_DISABLED: _wire(503, "The ledger is disabled."),
    P.VKEY_NOT_FOUND: _wire(404, "No such virtual key."),
    P.VKEY_CONFLICT: _wire(409, "The virtual key conflicts with another."),
    P.UPLOAD_UNKNOWN: _wire(404, "Unknown or expired upload session."),
    P.GATEWAY_FAULT: _wire(500, "gemgate failed to handle the request."),
}
PROBLEMS = {pid: replace(record, **_WIRE.get(pid, {}))  # type: ignore[arg-type]
            for pid, record in PROBLEMS.items()}
assert set(PROBLEMS) == set(ProblemId), "every problem id needs its record"


def problem(problem_id: ProblemId) -> Problem:
    return PROBLEMS[problem_id]


def hint(problem_id: ProblemId, lang: str) -> str:
    return PROBLEMS[problem_id].hint(lang)


def may_fall_back(problem_id: ProblemId | None) -> bool:
    """Whether the next model of a chain (or a provider) may do better after this outcome."""
    return problem_id is not None and PROBLEMS[problem_id].fallback


def language(accept_language: str | None) -> str:
    """'zh' when the client prefers Chinese (Accept-Language: zh, zh-CN, zh-Hans…), else 'en'."""
    if not accept_language:
        return "en"
    best, best_q = "en", -1.0
    for item in accept_language.split(","):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        tag = tag.strip().lower()
        if q > best_q and (tag.startswith("zh") or tag.startswith("en") or tag == "*"):
            best, best_q = ("zh" if tag.startswith("zh") else "en"), q
    return best
