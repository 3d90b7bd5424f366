"""mdfeed configuration: one frozen, typed config per component, loaded in one place.

A config file is TOML with one table per component (`[bus]`, `[store]`, ...). Any key can
be overridden from the environment as ``MDFEED__<SECTION>__<KEY>`` (for example
``MDFEED__BUS__KIND=kafka``). The file and the overrides are checked before anything
starts: an unknown section or key, or a value of the wrong type or out of range, raises
`ConfigError` with a message naming the key (``bus.tick_partitions``) and where the value
came from.

Two example configs ship with the package (`config_names`): ``embedded``, the default,
which needs no servers, and ``local-stack``, which talks to the Kafka, Cassandra and
Mosquitto that ``mdfeed stack up`` starts.

Only the composition root (the CLI) reads the environment; components receive their
frozen config object.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

ENV_PREFIX = "MDFEED__"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the source."""


@dataclass(frozen=True, slots=True)
class Between:
    """Inclusive bounds for a numeric config value; None leaves that side open."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """A check of a config value beyond its type: `check` returns what is wrong, or None."""

    check: Callable[[Any], str | None]


def parse_shard(text: str) -> tuple[int, int] | None:
    """``"K/N"`` as (K, N) with 1 <= K <= N; None for ``""`` (not sharded); ValueError else."""
    if not text:
        return None
    k_text, slash, n_text = text.partition("/")
    if not (slash and k_text.isdigit() and n_text.isdigit()):
        raise ValueError(f"expected K/N (shard K of N, e.g. 1/2), got {text!r}")
    k, n = int(k_text), int(n_text)
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def _shard_problem(value: Any) -> str | None:
    try:
        parse_shard(value)
    except ValueError as exc:
        return str(exc)
    return None


Port = Annotated[int, Between(1, 65535)]
PositiveInt = Annotated[int, Between(1, None)]
PositiveFloat = Annotated[float, Between(1e-9, None)]

DEFAULT_SYMBOLS: tuple[str, ...] = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "JPM", "V",
    "UNH", "XOM", "MA", "JNJ", "PG", "HD", "COST", "ABBV", "MRK", "CVX",
    "PEP", "KO", "ADBE", "CRM", "NFLX", "AMD", "INTC", "ORCL", "CSCO", "QCOM",
    "TXN", "IBM", "BAC", "WFC", "GS", "MS", "C", "DIS", "NKE", "MCD",
    "WMT", "T", "VZ", "PFE", "BA", "CAT", "GE", "UBER", "PYPL", "SBUX",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """The simulated FIX venue that `mdfeed run` starts in-process."""

    #: Start the simulated venue (the embedded default); off when a real venue is used.
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 9876
    #: Symbols the venue quotes; others are rejected with MarketDataRequestReject (Y).
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    #: Quote and trade updates per second across all symbols.
    rate_ticks_per_s: PositiveInt = 2000
    #: Book levels per side.
    depth: PositiveInt = 10
    #: Share of updates that are trades (the rest move the book).
    trade_ratio: Annotated[float, Between(0.0, 1.0)] = 0.1
    #: How the venue's incremental refreshes (X) key book levels (docs/book-models.md):
    #: ``price`` (MDEntryPx, with positions that also hold), ``position``
    #: (MDEntryPositionNo, level 1 also moving in place), ``entry_id`` (MDEntryID; not
    #: with the fast stream). The full refresh (W) carries what the model needs.
    book_model: Literal["price", "position", "entry_id"] = "price"
    sender_comp_id: str = "VENUE"
    target_comp_id: str = "MDFEED"
    #: Seed of the random walk; 0 draws a new one each start.
    seed: int = 0
    #: ``random``: the paced random walk. ``fast``: the benchmark stream, pre-encoded X
    #: cycles written as fast as the reader takes them (fix_session.venue.fast).
    stream: Literal["random", "fast"] = "random"
    #: Cap of the fast stream in entries per second; 0: the reader's pace.
    fast_rate_ticks_per_s: Annotated[int, Between(0, None)] = 0


@dataclass(frozen=True, slots=True)
class FixSessionConfig:
    """The QuickFIX initiator session with the venue."""

    host: str = "127.0.0.1"
    port: Port = 9876
    sender_comp_id: str = "MDFEED"
    target_comp_id: str = "VENUE"
    username: str = ""
    password: str = ""
    heartbeat_interval_s: PositiveInt = 30
    reconnect_interval_s: PositiveInt = 5
    #: Symbols to subscribe to; empty means every symbol of the simulated venue.
    symbols: tuple[str, ...] = ()
    #: Book levels requested per side (MarketDepth, tag 264).
    market_depth: PositiveInt = 10
    #: How the venue's incremental refreshes name the level they update: ``price``
    #: (MDEntryPx), ``position`` (MDEntryPositionNo / MDPriceLevel: insert shifts levels
    #: down, delete shifts them up, change replaces the level) or ``entry_id`` (MDEntryID /
    #: MDEntryRefID). docs/book-models.md has each model's rules.
    book_model: Literal["price", "position", "entry_id"] = "price"
    #: Levels kept per side beyond market_depth (a side holds market_depth + book_margin at
    #: most; levels past that are trimmed and counted), so deletes near the top do not
    #: empty the visible depth.
    book_margin: Annotated[int, Between(0, 1000)] = 5
    #: A locked book (best bid equal to best offer) is legal at this venue; when false it is
    #: a book fault, like a crossed one.
    locked_book_ok: bool = False
    #: Price levels a side each quote tick carries (Tick.bid_levels / ask_levels), a quote
    #: tick going out whenever any of them changes; 0 (the default) publishes the top of
    #: book only. At most market_depth + book_margin.
    publish_depth: Annotated[int, Between(0, 1000)] = 0
    #: Symbols per MarketDataRequest (V). Symbols requested together can share X messages,
    #: so fewer, fuller messages reach the ingest; the default puts the usual symbol lists
    #: in one request. 1 is one request per symbol.
    symbols_per_request: Annotated[int, Between(1, 100_000)] = 500
    #: ``"K/N"``: this process is shard K of N ingest processes and subscribes only the
    #: symbols with ``zlib.crc32(symbol) % N == K - 1`` (a hash stable across processes and
    #: runs), each shard on a FIX session of its own; ``""`` (the default) subscribes all.
    #: Every shard publishes into the same topic, keyed by symbol, so per-symbol sequences
    #: stay intact (a symbol is in exactly one shard).
    shard: Annotated[str, Checked(_shard_problem)] = ""
    #: When sharded, log on as ``<sender_comp_id>-K`` so each shard has its own session;
    #: false when each shard's config names its own `sender_comp_id`.
    shard_comp_id_suffix: bool = True
    #: Session schedule in UTC (QuickFIX StartTime/EndTime); equal times mean all day.
    start_time: str = "00:00:00"
    end_time: str = "00:00:00"
    #: Where QuickFIX writes its event log (and message log, when enabled).
    log_dir: str = ".mdfeed/fix"
    #: Also log every FIX message (slow at high rates; for debugging).
    log_messages: bool = False
    #: The dictionary the venue speaks: plain FIX 4.4, or FIX 4.4 with the venue extension.
    dictionary: Literal["fix44", "venue44"] = "fix44"


@dataclass(frozen=True, slots=True)
class BusConfig:
    """The tick and chat bus: an in-process bus, or Kafka."""

    kind: Literal["memory", "kafka"] = "memory"
    bootstrap_servers: str = "127.0.0.1:9092"
    tick_topic: str = "md.ticks"
    chat_topic: str = "chat.messages"
    #: Bar updates from the aggregator to the fanouts (gRPC BarUpdate, MQTT bars/...).
    bar_topic: str = "md.bars"
    tick_partitions: PositiveInt = 6
    client_id: str = "mdfeed"
    #: How long an idle producer waits to fill a batch. 0 (the default) is an adaptive
    #: linger: a record on a quiet bus leaves at once, and records that arrive while a
    #: batch is in flight leave together as the next one, so a quiet market is never
    #: delayed and a busy one is still batched.
    linger_ms: Annotated[int, Between(0, 10_000)] = 0
    #: The least time between two produce requests to Kafka while records keep coming: a
    #: window that would leave sooner waits out the rest, so a busy bus sends one fuller
    #: request per spacing (and each consumer fetches fuller batches), while a record after
    #: a quiet spacing leaves at once. It trades latency for CPU: at the bench's fixed
    #: rate, 20 ms halved the cores the pipeline used and added about 11 ms at p50; 2 ms
    #: saved about 6% and moved no percentile beyond the run-to-run noise (README,
    #: "Benchmarks"). 0 (the default): no spacing, the adaptive linger above alone.
    request_spacing_ms: Annotated[int, Between(0, 1_000)] = 0
    #: The Kafka client that produces: "aiokafka" (the default) or "confluent" (librdkafka,
    #: mdfeed/kernel/bus/_confluent.py). At the bench's fixed rate confluent cost the ingest
    #: 0.23 of a core against 0.36, but each window waits for its delivery report, which
    #: reaches the loop through a thread that needs the GIL, and ingest -> bus went from
    #: p50 0.21 to 2.07 ms (README, "Benchmarks"). Consumers are aiokafka's either way.
    kafka_producer: Literal["aiokafka", "confluent"] = "aiokafka"
    #: Records the producer holds while the bus is unreachable; past it, see the bus docs.
    buffer_max_records: PositiveInt = 200_000


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The bar and chat store: SQLite (embedded), or Cassandra."""

    kind: Literal["sqlite", "cassandra"] = "sqlite"
    sqlite_path: str = ".mdfeed/mdfeed.sqlite3"
    cassandra_contact_points: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: Port = 9042
    keyspace: str = "mdfeed"
    replication_factor: PositiveInt = 1


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The MQTT broker clients connect to: embedded in-process, or an external Mosquitto."""

    #: Run the MQTT side at all. With several fanout processes on one broker, every bridge
    #: publishes every quote and chat message: enable it on one (posts are taken once, through
    #: a shared subscription, either way).
    enabled: bool = True
    kind: Literal["embedded", "external"] = "embedded"
    host: str = "127.0.0.1"
    port: Port = 1883
    #: Prepended to every topic, so several deployments can share one broker.
    topic_prefix: str = ""
    #: Quote publishes per symbol per second at most; faster updates are conflated.
    quote_max_rate_per_symbol_hz: PositiveFloat = 10.0
    #: The fanout's own MQTT login (external brokers with an ACL); empty for anonymous.
    username: str = ""
    password: str = ""
    #: Empty: ``mdfeed-fanout-<host name>-<gRPC port>``, stable across restarts (the
    #: broker keeps the persistent session) and unique per process on a host.
    client_id: str = ""
    #: Shared-subscription group for chat posts on an external broker (``$share/GROUP/...``),
    #: so each post is handled by one fanout process however many run.
    share_group: str = "mdfeed"
    #: Seconds between reconnect attempts after the broker goes away.
    reconnect_interval_s: PositiveFloat = 1.0


@dataclass(frozen=True, slots=True)
class FanoutConfig:
    """The gRPC fanout server."""

    grpc_host: str = "127.0.0.1"
    grpc_port: Port = 50051
    #: PEM certificate chain and private key; both empty serves plaintext (loopback use).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: Ticks per TickBatch frame (per-message overhead dominates a grpc.aio stream).
    max_batch_ticks: Annotated[int, Between(1, 10_000)] = 256
    #: Ticks a client may have queued before its lane conflates (latest value per symbol).
    max_pending_ticks: PositiveInt = 10_000
    #: A conflating client pending on more symbols than this is disconnected.
    max_pending_symbols: PositiveInt = 5_000
    #: A client that takes nothing for this long while ticks wait is stuck: disconnected
    #: with RESOURCE_EXHAUSTED and the reason.
    max_stall_s: PositiveFloat = 30.0
    #: Stamp each tick with bus_time_ns and fanout_time_ns as it is consumed, so clients can
    #: time every hop (about 0.13 us a tick, +13% on the consume loop; `mdfeed bench` needs it on).
    hop_timestamps: bool = True


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Who may connect, and to what: tokens with per-symbol and per-room entitlements."""

    #: Off: every client is anonymous and entitled to everything (loopback development).
    enabled: bool = False
    #: TOML file of users: ``[users.NAME] token, symbols, rooms`` (see mdfeed.kernel.entitlements).
    users_file: str = ""


@dataclass(frozen=True, slots=True)
class ChatConfig:
    """Chat rooms on the same connections as ticks: validated, sequenced, persisted."""

    #: Longest message text, in characters.
    max_text_chars: Annotated[int, Between(1, 100_000)] = 2000
    #: Posts per user: a sustained rate and a burst (token bucket).
    rate_per_user_hz: PositiveFloat = 5.0
    rate_burst: PositiveInt = 20
    #: History and resume replies carry at most this many messages per request.
    history_max: Annotated[int, Between(1, 100_000)] = 1000
    #: Undelivered chat frames a client may hold before it is disconnected (it can resume).
    client_queue_max: PositiveInt = 10_000


@dataclass(frozen=True, slots=True)
class OhlcvConfig:
    """The bar aggregator: ticks from the bus to OHLCV bars in the bar store."""

    #: Consumer group the aggregator instances share: they split the tick partitions.
    group_id: str = "mdfeed-ohlcv"
    #: Resolutions built: any of 1s, 1m, 5m, 15m, 1h, 1D.
    resolutions: tuple[str, ...] = ("1s", "1m", "5m", "15m", "1h", "1D")
    #: Bars come from trades; a symbol with no trade yet in a bar takes mid quotes instead.
    mid_when_no_trades: bool = True
    #: Daily bars start at midnight in this IANA time zone (DST-aware).
    session_timezone: str = "America/New_York"
    #: A tick this far behind the newest venue time of its symbol still revises its bar;
    #: later ones are counted and dropped. A bar is final once the lateness has passed.
    allowed_lateness_s: Annotated[float, Between(0.0, 3600.0)] = 2.0
    #: Bars are written (idempotent upserts) and offsets committed at this interval.
    flush_interval_ms: Annotated[int, Between(10, 60_000)] = 250
    #: Days the store keeps 1s and 1m bars (0: forever); coarser bars are kept.
    ttl_1s_days: Annotated[int, Between(0, 3650)] = 7
    ttl_1m_days: Annotated[int, Between(0, 3650)] = 90


@dataclass(frozen=True, slots=True)
class DatafeedConfig:
    """The TradingView-compatible datafeed and chart page."""

    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    #: The chart page's folder (index.html, app.js and web/node_modules from
    #: ``npm ci --prefix web``), relative to the working directory.
    web_root: str = "web"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The Prometheus endpoint (``GET /metrics``) every long-running command serves."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0: the command's own default, so all of them run side by side on one host without
    #: configuration: run 9460, ingest 9461, fanout 9462, aggregate 9463, datafeed 9464.
    #: A port in use stops the command at start, naming this key.
    port: Annotated[int, Between(0, 65535)] = 0


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Log records on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: "text": one human-readable line per record; "json": one JSON object per line (time
    #: in RFC 3339 UTC, level, logger, message, the record's ``extra`` fields, exception).
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True)
class MdfeedConfig:
    """The whole configuration: one section per component."""

    venue: VenueConfig = field(default_factory=VenueConfig)
    fix_session: FixSessionConfig = field(default_factory=FixSessionConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    fanout: FanoutConfig = field(default_factory=FanoutConfig)
    ohlcv: OhlcvConfig = field(default_factory=OhlcvConfig)
    datafeed: DatafeedConfig = field(default_factory=DatafeedConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the FIX session subscribes to: ``fix_session.symbols``, else (empty)
        every symbol of the simulated venue."""
        return self.fix_session.symbols or self.venue.symbols


def config_names() -> list[str]:
    """Names of the example configs shipped with mdfeed (``embedded``, ``local-stack``)."""
    folder = resources.files("mdfeed.kernel") / "configs"
    names = (p.name for p in folder.iterdir())
    return sorted(n.removesuffix(".toml") for n in names if n.endswith(".toml"))


def read_config_text(name_or_path: str) -> tuple[str, str]:
    """Return (source description, TOML text) for a shipped config name or a file path."""
    if name_or_path in config_names():
        ref = resources.files("mdfeed.kernel") / "configs" / f"{name_or_path}.toml"
        return f"config '{name_or_path}'", ref.read_text(encoding="utf-8")
    path = Path(name_or_path)
    try:
        return str(path), path.read_text(encoding="utf-8")
    except FileNotFoundError:
        names = ", ".join(config_names())
        raise ConfigError(
            f"config file {path} not found (shipped configs are named: {names})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def load_config(
    name_or_path: str | None = None, env: Mapping[str, str] | None = None
) -> MdfeedConfig:
    """Load and check a config (a shipped name or a TOML path; None: defaults), then env."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if name_or_path is not None:
        source, text = read_config_text(name_or_path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return build_config(raw, source, env or {})


def build_config(raw: Mapping[str, Any], source: str, env: Mapping[str, str]) -> MdfeedConfig:
    """Check a parsed TOML document and environment overrides; return the frozen config."""
    sections = {f.name: f for f in dataclasses.fields(MdfeedConfig)}
    values: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in sections}

    for section, table in raw.items():
        if section not in sections:
            raise ConfigError(f"{source}: unknown section [{section}]{_suggest(section, sections)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: '{section}' must be a table ([{section}])")
        for key, value in table.items():
            values[section][key] = (value, source)

    for var, value in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(
                f"environment variable {var}: expected {ENV_PREFIX}<SECTION>__<KEY> with a "
                f"section of {', '.join(sections)}"
            )
        values[parts[0]][parts[1]] = (value, f"environment variable {var}")

    section_types = typing.get_type_hints(MdfeedConfig)
    built = {name: _build_section(name, section_types[name], values[name]) for name in sections}
    fix = built["fix_session"]
    kept = fix.market_depth + fix.book_margin
    if fix.publish_depth > kept:
        source = values["fix_session"].get("publish_depth", (None, source))[1]
        raise ConfigError(
            f"{source}: fix_session.publish_depth: at most market_depth + book_margin "
            f"({kept}), the levels a book keeps a side; got {fix.publish_depth}"
        )
    return MdfeedConfig(**built)


def _build_section(section: str, cls: type[Any], given: Mapping[str, tuple[Any, str]]) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, (value, source) in given.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{section}.{key}'{_suggest(key, known)}")
        from_env = source.startswith("environment")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value, source, from_env=from_env)
    return cls(**kwargs)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(key: str, hint: Any, value: Any, source: str, *, from_env: bool) -> Any:
    bounds: Between | None = None
    checked: Checked | None = None
    if typing.get_origin(hint) is Annotated:
        hint, *extras = typing.get_args(hint)
        bounds = next((e for e in extras if isinstance(e, Between)), None)
        checked = next((e for e in extras if isinstance(e, Checked)), None)
    if typing.get_origin(hint) is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            expected = "one of " + ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"{source}: {key}: expected {expected}, got {value!r}")
        return value
    parse = _PARSERS[typing.get_origin(hint) or hint]
    try:
        result = parse(value, from_env)
    except _WrongTypeError as exc:
        raise ConfigError(f"{source}: {key}: expected {exc}, got {value!r}") from None
    if checked is not None and (problem := checked.check(result)) is not None:
        raise ConfigError(f"{source}: {key}: {problem}")
    if bounds is not None:
        if bounds.low is not None and result < bounds.low:
            low = _num(bounds.low)
            raise ConfigError(f"{source}: {key}: must be at least {low}, got {result!r}")
        if bounds.high is not None and result > bounds.high:
            high = _num(bounds.high)
            raise ConfigError(f"{source}: {key}: must be at most {high}, got {result!r}")
    return result


class _WrongTypeError(Exception):
    """The value is not of the field's type; the message says what was expected."""


def _parse_bool(value: Any, from_env: bool) -> bool:
    if from_env and isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
        return value.lower() in {"true", "1"}
    if isinstance(value, bool):
        return value
    raise _WrongTypeError("true or false")


def _parse_int(value: Any, from_env: bool) -> int:
    if from_env and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise _WrongTypeError("an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _WrongTypeError("an integer")
    return value


def _parse_float(value: Any, from_env: bool) -> float:
    if from_env and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _WrongTypeError("a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _WrongTypeError("a number")
    return float(value)


def _parse_str(value: Any, from_env: bool) -> str:
    if not isinstance(value, str):
        raise _WrongTypeError("a string")
    return value


def _parse_str_tuple(value: Any, from_env: bool) -> tuple[str, ...]:
    if from_env and isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _WrongTypeError("a list of strings")
    return tuple(value)


_PARSERS: dict[Any, Callable[[Any, bool], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: _parse_float,
    str: _parse_str,
    tuple: _parse_str_tuple,
}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def dump_config(config: MdfeedConfig) -> str:
    """The effective config as TOML, every key present, for `mdfeed config show`."""
    lines: list[str] = []
    for section in dataclasses.fields(config):
        lines.append(f"[{section.name}]")
        for key, value in dataclasses.asdict(getattr(config, section.name)).items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = [
    "AuthConfig",
    "BusConfig",
    "ChatConfig",
    "ConfigError",
    "DatafeedConfig",
    "FanoutConfig",
    "FixSessionConfig",
    "LogConfig",
    "MdfeedConfig",
    "MetricsConfig",
    "MqttConfig",
    "OhlcvConfig",
    "StoreConfig",
    "VenueConfig",
    "build_config",
    "config_names",
    "dump_config",
    "load_config",
]
