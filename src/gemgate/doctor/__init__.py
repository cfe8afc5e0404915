"""`gemgate doctor`: every key, network and quota problem between this machine and Gemini,
found in order and explained with the fix, in English or Chinese — from the same problem table
(gemgate.problems) and answer classification (gemgate.core.classify) as the gateway."""

from gemgate.problems import ProblemId as P

# Every problem doctor finds and explains, in the order of its checks (each has fix steps in
# gemgate.problems, and a test that reproduces it).
RECOGNISED: tuple[P, ...] = (
    P.NO_UPSTREAM_KEYS, P.CONFIG_INVALID, P.ENV_KEYS_DIFFER, P.ENV_KEY_MALFORMED,
    P.DOTENV_NOT_LOADED, P.VERTEX_MODE_SET, P.ENV_PROXY_IGNORED, P.PROXY_UNREACHABLE,
    P.DNS_FAILED, P.TCP_FAILED, P.TLS_FAILED,
    P.API_KEY_INVALID, P.KEY_IP_RESTRICTED, P.KEY_REFERRER_RESTRICTED, P.KEY_API_RESTRICTED,
    P.SERVICE_DISABLED, P.CONSUMER_SUSPENDED, P.LOCATION_UNSUPPORTED, P.FREE_TIER_UNAVAILABLE,
    P.QUOTA_EXHAUSTED, P.MODEL_OVERLOADED, P.MODEL_NOT_FOUND,
    P.GATEWAY_UNREACHABLE, P.TOKEN_INVALID, P.GATEWAY_ROUND_TRIP_FAILED,
)
