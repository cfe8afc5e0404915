"""`gemgate doctor`: every key, network and quota problem between this machine and Gemini,
found in order and explained with the fix, in English or Chinese — from the same problem table
(gemgate.problems) and answer classification (gemgate.upstream.classify) as the gateway."""

# Every problem doctor finds and explains, in the order of its checks (each has fix steps in
# gemgate.problems, and a test that reproduces it).
RECOGNISED = (
    "NO_UPSTREAM_KEYS", "CONFIG_INVALID", "ENV_KEYS_DIFFER", "ENV_KEY_MALFORMED",
    "DOTENV_NOT_LOADED", "VERTEX_MODE_SET", "ENV_PROXY_IGNORED", "PROXY_UNREACHABLE",
    "DNS_FAILED", "TCP_FAILED", "TLS_FAILED",
    "API_KEY_INVALID", "KEY_IP_RESTRICTED", "KEY_REFERRER_RESTRICTED", "KEY_API_RESTRICTED",
    "SERVICE_DISABLED", "CONSUMER_SUSPENDED", "LOCATION_UNSUPPORTED", "FREE_TIER_UNAVAILABLE",
    "QUOTA_EXHAUSTED", "MODEL_OVERLOADED", "MODEL_NOT_FOUND",
    "GATEWAY_UNREACHABLE", "TOKEN_INVALID", "GATEWAY_ROUND_TRIP_FAILED",
)
