"""Settings: every ``CHOIR_*`` environment variable, with embedded defaults.

With nothing set, Choir runs on one machine: SQLite and an embedded Qdrant shard
under the data directory, in-process fan-out, the extractive answerer, no chain.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from choir.ledger import ONE_CHOIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHOIR_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    data_dir: Path = Field(Path("choir-data"), description="Where the embedded stores keep their files.")
    public_url: str | None = Field(
        None, description="The URL people reach the server at (SIWS domain/uri); default http://host:port."
    )
    allowed_origins: str = Field(
        "", description="Comma-separated origins allowed on /ws and state-changing REST; default: public_url."
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data dir.")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; default an embedded edge shard.")
    vector_engine: str = Field(
        "auto",
        description="Vector index: edge (embedded, one process), qdrant (CHOIR_QDRANT_URL), pgvector (in "
        "Choir's PostgreSQL, shared by every process), sql (in the SQL database, a replica in each "
        "process); auto: qdrant when CHOIR_QDRANT_URL is set, else pgvector on a PostgreSQL that has the "
        "extension, else edge.",
    )
    pgvector_hnsw: bool = Field(
        True,
        description="pgvector searches through an HNSW index (cosine); false: exactly, by a scan of the "
        "table (for a pgvector build whose index code cannot run on the CPU).",
    )
    redis_url: str | None = Field(None, description="Redis URL for fan-out across server processes.")
    llm_url: str | None = Field(None, description="OpenAI-compatible endpoint base URL (…/v1).")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    llm_api_key: str | None = Field(None, description="Bearer token for the LLM endpoint.")
    llm_timeout_s: float = Field(60.0, gt=0, description="Timeout of one LLM request.")
    solana_rpc_url: str | None = Field(None, description="Solana RPC endpoint for settlement.")
    chain: str = Field("none", description="Settlement layer: none, litesvm, or rpc.")
    epoch_seconds: int = Field(3600, ge=1, description="Length of a reward epoch.")
    min_stake: int = Field(ONE_CHOIR, gt=0, description="Minimum spec stake, in base units.")
    prior_rate_ppm: int = Field(
        10,
        ge=0,
        le=1_000_000,
        description="Treasury share paid as prior rewards per epoch, ppm (10 = 0.001%).",
    )
    author_cap_ppm: int = Field(
        200_000,
        ge=1,
        le=1_000_000,
        description="Most of an epoch's new-message budget one author may take, ppm.",
    )
    welcome_grant: int = Field(
        10 * ONE_CHOIR, ge=0, description="CHOIR granted once from the treasury to a new address (0: none)."
    )
    sweep_interval_s: float = Field(
        5.0, gt=0, description="How often expired specs and ended epochs are settled."
    )
    model_cache: str = Field(
        "",
        description="Directory of the embedding model's built ONNX graph (built once, checked by hash at "
        "each start); default <data dir>/cache.",
    )
    log_level: str = Field("INFO", description="Log level of the JSON logs.")
    session_ttl_s: int = Field(30 * 24 * 3600, gt=0, description="Session cookie lifetime.")
    reads_per_minute: int = Field(
        600, ge=0, description="REST reads (GET /api/..., /metrics) per client a minute; 0: no limit."
    )
    searches_per_minute: int = Field(
        60, ge=0, description="Searches (GET /api/search) per client a minute; 0: no limit."
    )
    operators: str = Field(
        "",
        description="Comma-separated addresses of the operators: signed in with SIWS, they may run "
        "the operator's routes (POST /api/audit). None by default.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated IPs or networks of the reverse proxies whose X-Forwarded-For is "
        "believed for a client's address. None by default: the header is ignored, even from loopback.",
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("vector_engine")
    @classmethod
    def _vector_engine(cls, value: str) -> str:
        if value not in {"auto", "edge", "qdrant", "pgvector", "sql"}:
            raise ValueError("must be auto, edge, qdrant, pgvector or sql")
        return value

    @property
    def vectors(self) -> str:
        """The vector engine this configuration names: edge, qdrant, pgvector or sql (``auto`` on a
        PostgreSQL with pgvector is decided against the database: store.vectors.pgvector.engine_for)."""
        if self.vector_engine == "auto":
            return "qdrant" if self.qdrant_url else "edge"
        return self.vector_engine

    @field_validator("chain")
    @classmethod
    def _chain(cls, value: str) -> str:
        if value not in {"none", "litesvm", "rpc"}:
            raise ValueError("must be none, litesvm or rpc")
        return value

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in {"127.0.0.1", "0.0.0.0", "::"} else self.host
        return f"http://{host}:{self.port}"

    @property
    def origins(self) -> list[str]:
        listed = [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]
        if listed:
            return listed
        base = self.base_url
        # The same server reached as localhost or 127.0.0.1 is the same origin to a person.
        return sorted({base, base.replace("//localhost", "//127.0.0.1")})

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for item in (p.strip() for p in value.split(",") if p.strip()):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @property
    def model_cache_dir(self) -> Path:
        return Path(self.model_cache) if self.model_cache else self.data_dir / "cache"

    @property
    def operator_addresses(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.operators.split(",") if a.strip())

    @property
    def proxies(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def sql_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'choir.db'}"
