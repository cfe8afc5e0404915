"""Every problem gemgate recognises, with what it means and how to fix it, in English and Chinese.

One table serves the gateway's `hint` field and (later) `gemgate doctor`, so the two never
disagree. Hints name the cause first, then the fix.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    id: str
    en: str
    zh: str

    def hint(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def _table(*problems: Problem) -> dict[str, Problem]:
    return {p.id: p for p in problems}


PROBLEMS = _table(
    # ---- upstream key and project faults -------------------------------------------------
    Problem("API_KEY_INVALID",
            "Google rejected an upstream key as invalid (deleted, mistyped or from another "
            "service). gemgate has taken it out of rotation; replace it in the configuration.",
            "Google 认为某个上游密钥无效（已删除、输错或不是 Gemini 的密钥）。gemgate 已停用它；"
            "请在配置中替换该密钥。"),
    Problem("SERVICE_DISABLED",
            "The Generative Language API is not enabled in this key's Google Cloud project. "
            "Enable it at the console link in the message, wait a few minutes, and gemgate "
            "will bring the project back by itself.",
            "该密钥所属的 Google Cloud 项目没有启用 Generative Language API。请打开错误信息中的"
            "控制台链接启用它，几分钟后 gemgate 会自动恢复该项目。"),
    Problem("CONSUMER_SUSPENDED",
            "Google has suspended this key or its project. gemgate stopped using it; check the "
            "project in Google Cloud console (billing, policy notices) or use another project.",
            "Google 已暂停该密钥或其项目。gemgate 已停用它；请在 Google Cloud 控制台检查该项目"
            "（结算、政策通知），或改用其他项目。"),
    Problem("API_KEY_RESTRICTED",
            "The upstream key has API, IP or referrer restrictions that block this call. Allow "
            "the Generative Language API and gemgate's outbound IP in the key's restrictions.",
            "上游密钥设置了 API、IP 或引用来源限制，拦截了这次调用。请在密钥限制中允许 "
            "Generative Language API 和 gemgate 的出口 IP。"),
    Problem("LOCATION_UNSUPPORTED",
            "Google refused the call because the request comes from a region where the Gemini "
            "API is not offered. Route this project through a proxy in a supported region "
            "(projects.<name>.proxy in gemgate.yaml).",
            "Google 拒绝了请求：请求来自不提供 Gemini API 的地区。请为该项目配置位于支持地区的"
            "代理（gemgate.yaml 中的 projects.<name>.proxy）。"),
    Problem("FREE_TIER_UNAVAILABLE",
            "The Gemini API free tier is not available in this country; enable billing on the "
            "project to use it.",
            "该国家或地区不提供 Gemini API 免费层；请为该项目开通结算后再使用。"),
    # ---- quota and load -------------------------------------------------------------------
    Problem("QUOTA_EXHAUSTED",
            "A Google quota ran out for this project and model (see QuotaFailure for which one). "
            "Quotas are per project, not per key: add keys from other projects, or wait for "
            "the RetryInfo delay.",
            "该项目在该模型上的 Google 配额已用完（具体是哪项见 QuotaFailure）。配额按项目计算，"
            "而不是按密钥：请添加来自其他项目的密钥，或等待 RetryInfo 给出的时间。"),
    Problem("ALL_PROJECTS_COOLING",
            "Every upstream project is waiting out a Google quota limit. Retry after the "
            "RetryInfo delay, or add keys from more Google Cloud projects.",
            "所有上游项目都在等待 Google 配额恢复。请在 RetryInfo 给出的时间后重试，或添加更多"
            " Google Cloud 项目的密钥。"),
    Problem("NO_QUOTA_ROOM",
            "gemgate held the request until its deadline, but no project had quota room for this "
            "model (gemgate admits requests so Google's limits are never tripped). Retry after "
            "RetryInfo's delay, raise the priority, allow fallback, or add projects.",
            "gemgate 一直为该请求等待配额，直到时限用尽，但没有项目有该模型的配额余量"
            "（gemgate 会控制请求节奏，避免触发 Google 的限额）。请在 RetryInfo 给出的时间后"
            "重试、提高优先级、允许模型降级，或添加更多项目。"),
    Problem("BAD_PRIORITY",
            "x-gemgate-priority must be one of high, normal, low, batch.",
            "x-gemgate-priority 只能是 high、normal、low 或 batch 之一。"),
    Problem("NO_HEALTHY_KEYS",
            "No upstream key is usable: all are disabled (see /admin/pool for each reason). Fix "
            "or replace the keys; disabled keys are re-checked and return by themselves.",
            "没有可用的上游密钥：全部已被停用（原因见 /admin/pool）。请修复或更换密钥；被停用的"
            "密钥会定期复查并自动恢复。"),
    Problem("MODEL_OVERLOADED",
            "Google reports the model is overloaded (503). gemgate retried within the deadline; "
            "try again shortly or use a lighter model (e.g. a flash variant).",
            "Google 报告该模型过载（503）。gemgate 已在时限内重试；请稍后再试，或改用更轻量的模型"
            "（例如 flash 系列）。"),
    Problem("UPSTREAM_INTERNAL",
            "Google had an internal error (500). gemgate retried within the deadline; retry the "
            "request, and shorten very long inputs if it persists.",
            "Google 内部错误（500）。gemgate 已在时限内重试；请重试请求，"
            "若持续出现请缩短过长的输入。"),
    Problem("UPSTREAM_TIMEOUT",
            "Google did not answer in time. Raise the client's timeout or gemgate's deadline, "
            "or ask for a shorter answer.",
            "Google 未能及时响应。请调大客户端超时或 gemgate 的时限，或请求更短的回答。"),
    Problem("UPSTREAM_UNREACHABLE",
            "gemgate could not reach Google (connection refused, reset or DNS failure). Check "
            "the network or the project's proxy (HTTPS/SOCKS5) from the gateway host.",
            "gemgate 无法连接到 Google（连接被拒绝、被重置或 DNS 失败）。请在网关所在主机上检查"
            "网络或该项目的代理（HTTPS/SOCKS5）。"),
    Problem("STREAM_INTERRUPTED",
            "The upstream stream broke after part of the answer was sent; what arrived is "
            "complete up to this point. Retry the request to get a whole answer.",
            "上游流在已发送部分回答后中断；此前收到的内容是完整的。请重试以获得完整回答。"),
    # ---- OpenAI-compatible providers (the last fallback links) ----------------------------
    Problem("PROVIDER_RATE_LIMITED",
            "The fallback provider rate-limited gemgate (429). Its keys rest for the time it "
            "asked; add keys or raise the limits on the provider's side.",
            "备用服务商对 gemgate 限流（429）。其密钥会按对方要求的时间暂停使用；"
            "请增加密钥或在服务商处提高限额。"),
    Problem("PROVIDER_KEY_INVALID",
            "The fallback provider refused gemgate's key (401/403). Check the key under "
            "providers: in the configuration; it rests for 5 minutes before another try.",
            "备用服务商拒绝了 gemgate 的密钥（401/403）。请检查配置中 providers: 下的密钥；"
            "该密钥将暂停 5 分钟后再试。"),
    Problem("PROVIDER_UNAVAILABLE",
            "The fallback provider failed or could not be reached (5xx, network). gemgate "
            "retried within the deadline; check its base_url and status page.",
            "备用服务商出错或无法连接（5xx、网络）。gemgate 已在时限内重试；"
            "请检查其 base_url 及服务状态页。"),
    Problem("PROVIDER_REFUSED",
            "The fallback provider rejected the translated request (4xx); the message quotes "
            "it. Check the model mapping under providers: (models:).",
            "备用服务商拒绝了转换后的请求（4xx）；错误信息引用了其原文。"
            "请检查 providers: 下的模型映射（models:）。"),
    Problem("PROVIDER_UNSUPPORTED",
            "A provider's model only generates content; counting tokens, embeddings and "
            "other methods need a Gemini model.",
            "服务商模型只支持生成内容；计数 token、向量嵌入等其他方法请使用 Gemini 模型。"),
    Problem("PROVIDER_KEYS_RESTING",
            "Every key of the fallback provider is resting after refusals or rate limits; "
            "retry after the delay given.",
            "备用服务商的所有密钥都因被拒或限流而暂停；请在给出的延迟后重试。"),
    # ---- the client's own request --------------------------------------------------------
    Problem("OPENAI_REQUEST_INVALID",
            "gemgate cannot serve this OpenAI-format request as sent; the message names the "
            "field (param). Fix it, or see README for what maps to Gemini.",
            "gemgate 无法按原样处理该 OpenAI 格式请求；错误信息指出了字段（param）。"
            "请修正，或参阅 README 中与 Gemini 的对应关系。"),
    Problem("MODEL_NOT_FOUND",
            "The model name is unknown or does not support this method. Check the spelling "
            "(e.g. gemini-2.5-flash) against GET /v1beta/models.",
            "模型名称不存在或不支持该方法。请对照 GET /v1beta/models 检查拼写（例如 "
            "gemini-2.5-flash）。"),
    Problem("INVALID_REQUEST",
            "Google rejected the request body; the message names the field. Fix the request.",
            "Google 拒绝了请求内容；错误信息指出了具体字段。请修正请求。"),
    Problem("PERMISSION_DENIED",
            "Google denied access to this resource. Files, caches and batches belong to the "
            "Google Cloud project that created them; refer to them through the same gateway.",
            "Google 拒绝访问该资源。文件、缓存和批处理任务属于创建它们的 Google Cloud 项目；"
            "请通过同一个网关引用它们。"),
    Problem("MALFORMED_JSON",
            "The request body is not valid JSON. Send a JSON object with Content-Type: "
            "application/json.",
            "请求体不是有效的 JSON。请以 Content-Type: application/json 发送一个 JSON 对象。"),
    Problem("BODY_TOO_LARGE",
            "The request body is larger than gemgate accepts (max_body_bytes). Upload large "
            "media with the Files API and refer to it by URI instead.",
            "请求体超过了 gemgate 允许的大小（max_body_bytes）。大文件请先用 Files API 上传，"
            "再通过 URI 引用。"),
    Problem("TOKEN_MISSING",
            "No gemgate token was sent. Pass your gemgate token as the api_key (header "
            "x-goog-api-key, ?key=, or Authorization: Bearer).",
            "请求没有携带 gemgate 令牌。请把 gemgate 令牌作为 api_key 传入（x-goog-api-key 头、"
            "?key= 参数或 Authorization: Bearer）。"),
    Problem("TOKEN_INVALID",
            "This gemgate token is not known. Ask your gateway admin for a token, and check for "
            "stray spaces or quotes.",
            "该 gemgate 令牌无效。请向网关管理员索取令牌，并检查是否带有多余的空格或引号。"),
    Problem("GOOGLE_KEY_SENT",
            "You sent a Google API key to gemgate. Keep Google keys in the gateway's "
            "configuration and use your gemgate token as api_key instead.",
            "你向 gemgate 发送的是 Google API 密钥。Google 密钥应只保存在网关配置中；客户端请改用"
            " gemgate 令牌作为 api_key。"),
    Problem("UNKNOWN_ROUTE",
            "gemgate does not serve this path. Gemini routes live under /v1beta, /v1 or "
            "/v1alpha; set the SDK's base_url to the gateway's root URL.",
            "gemgate 不提供该路径。Gemini 接口位于 /v1beta、/v1 或 /v1alpha 下；请把 SDK 的 "
            "base_url 设为网关的根地址。"),
    # ---- virtual keys, budgets and the ledger ---------------------------------------------
    Problem("KEY_REVOKED",
            "This gemgate key has been revoked and will never work again. Ask your gateway "
            "admin for a new key.",
            "该 gemgate 密钥已被吊销，无法再使用。请向网关管理员申请新的密钥。"),
    Problem("KEY_EXPIRED",
            "This gemgate key has expired. Ask your gateway admin to extend it or issue a new one.",
            "该 gemgate 密钥已过期。请联系网关管理员延长有效期或签发新的密钥。"),
    Problem("KEY_DISABLED",
            "This gemgate key is disabled for now. Ask your gateway admin to enable it again.",
            "该 gemgate 密钥目前已被停用。请联系网关管理员重新启用。"),
    Problem("IP_NOT_ALLOWED",
            "This gemgate key may only be used from certain IP addresses, and this request came "
            "from another. Call from an allowed network, or ask the admin to add your address.",
            "该 gemgate 密钥只允许从特定 IP 地址使用，而本次请求来自其他地址。请在允许的网络中"
            "调用，或请管理员添加你的地址。"),
    Problem("MODEL_NOT_ALLOWED",
            "This gemgate key may not use this model. Use one of the models the message lists, "
            "or ask the admin to allow this one.",
            "该 gemgate 密钥无权使用此模型。请改用错误信息中列出的模型，或请管理员开放此模型。"),
    Problem("KEY_RATE_LIMITED",
            "This gemgate key is over its own per-minute limit (RPM/TPM) set by the admin. Wait "
            "for the RetryInfo delay, or slow down.",
            "该 gemgate 密钥超出了管理员为它设定的每分钟限额（RPM/TPM）。请等待 RetryInfo "
            "给出的时间后重试，或降低请求速度。"),
    Problem("BUDGET_EXCEEDED",
            "This gemgate key has used up its budget for the period. It works again when the "
            "period resets (see the message), or when the admin raises the budget.",
            "该 gemgate 密钥在本周期内的预算已用完。周期重置后（见错误信息）或管理员提高预算后"
            "即可继续使用。"),
    Problem("VKEY_NOT_FOUND",
            "No virtual key has this id or name. List keys with GET /admin/vkeys or "
            "`gemgate vkeys list`.",
            "没有该 ID 或名称的虚拟密钥。可用 GET /admin/vkeys 或 `gemgate vkeys list` 查看。"),
    Problem("VKEY_CONFLICT",
            "The change conflicts with the key's state: the name is taken by another active key, "
            "or the key is revoked.",
            "该操作与密钥当前状态冲突：名称已被其他有效密钥使用，或该密钥已被吊销。"),
    Problem("LEDGER_DISABLED",
            "Virtual keys and usage reports need the ledger, which is disabled in this "
            "configuration (ledger.enabled).",
            "虚拟密钥和用量报表依赖账本，而当前配置中账本已关闭（ledger.enabled）。"),
    Problem("ADMIN_ONLY",
            "This endpoint needs the admin key (GEMGATE_ADMIN_KEY) as a Bearer token.",
            "该接口需要管理员密钥（GEMGATE_ADMIN_KEY）作为 Bearer 令牌。"),
    Problem("GATEWAY_FAULT",
            "gemgate itself failed on this request; nothing was charged. Retry, and report the "
            "request id with the gateway log line of the same id.",
            "gemgate 自身处理该请求时出错，未产生费用。请重试，并附上请求 ID 及网关日志中同一 ID "
            "的记录进行反馈。"),
    Problem("UPLOAD_UNKNOWN",
            "This upload session is unknown or expired. Start the upload again.",
            "该上传会话不存在或已过期。请重新开始上传。"),
)


def hint(problem_id: str, lang: str) -> str:
    problem = PROBLEMS.get(problem_id)
    return problem.hint(lang) if problem else ""


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
