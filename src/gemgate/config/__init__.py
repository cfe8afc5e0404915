"""gemgate's settings: their shape (`settings`), where they come from (`loading`), and the
cleaning of pasted keys and proxy URLs (`keys`)."""

from gemgate.config.keys import check_proxy, clean_key, proxy_options
from gemgate.config.loading import (
    DEFAULT_FILE,
    ConfigError,
    load_settings,
    projects_from_env,
    tenants_from_env,
)
from gemgate.config.settings import (
    GOOGLE_URL,
    AutoConfig,
    BudgetConfig,
    CacheConfig,
    CorsConfig,
    LedgerConfig,
    LimitsConfig,
    LiveConfig,
    OpenAIConfig,
    OutlierConfig,
    PriceConfig,
    Priority,
    ProjectConfig,
    ProviderConfig,
    RemoteImagesConfig,
    RetryConfig,
    SchedulingConfig,
    SemanticCacheConfig,
    ServerConfig,
    Settings,
    StateConfig,
    StoreConfig,
    TenantConfig,
    Tier,
    TracingConfig,
)

__all__ = [
    "DEFAULT_FILE", "GOOGLE_URL", "AutoConfig", "BudgetConfig", "CacheConfig", "ConfigError",
    "CorsConfig", "LedgerConfig", "LimitsConfig", "LiveConfig", "OpenAIConfig", "OutlierConfig",
    "PriceConfig",
    "Priority", "ProjectConfig", "ProviderConfig", "RemoteImagesConfig", "RetryConfig",
    "SchedulingConfig", "SemanticCacheConfig", "ServerConfig", "Settings", "StateConfig",
    "StoreConfig", "TenantConfig", "Tier", "TracingConfig", "check_proxy", "clean_key",
    "load_settings",
    "projects_from_env", "proxy_options", "tenants_from_env",
]
