"""register_backend: a third-party backend with its own ``[store.<name>]`` table,
validated like the built-in ones' (and the built-ins registered the same way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec
import pytest

from eventvault import ConfigError, MemoryEventStore, load_config, open_store, register_backend
from eventvault.config import Config, NoOptions
from eventvault.registry import _REGISTRY, backend_names, env_overrides


class MineConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = "mine://localhost"
    retries: int = 3
    mode: Literal["fast", "safe"] = "safe"
    cache_dir: str | None = None

    INTEGERS: ClassVar[dict[str, tuple[int, int]]] = {"retries": (0, 10)}
    PATHS: ClassVar[tuple[str, ...]] = ("cache_dir",)

    def check(self) -> tuple[str, str] | None:
        if not self.url.startswith("mine://"):
            return "url", f"{self.url!r} is not a mine:// address"
        return None


class MineStore(MemoryEventStore):
    def __init__(self, options: MineConfig) -> None:
        super().__init__()
        self.options = options


received: list[Any] = []


def make_mine(config: Config, *, create: bool = True, options: MineConfig) -> MineStore:
    received.append((config, create, options))
    return MineStore(options)


@pytest.fixture
def mine() -> Iterator[None]:
    register_backend("mine", make_mine, MineConfig, env={"MINE_URL": "url"})
    received.clear()
    try:
        yield
    finally:
        _REGISTRY.pop("mine")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ev.toml"
    path.write_text(text)
    return path


def test_a_registered_backend_gets_its_table(mine: None, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[store]\nbackend = "mine"\n[store.mine]\nurl = "mine://db"\nmode = "fast"\n'
        'cache_dir = "cache"\n',
    )
    cfg = load_config(path, env={})
    options = cfg.store.options(MineConfig)
    assert options == MineConfig(url="mine://db", mode="fast", cache_dir=str(tmp_path / "cache"))
    assert "mine" in backend_names()


def test_the_factory_receives_the_validated_struct(mine: None) -> None:
    with open_store({"store": {"backend": "mine", "mine": {"retries": 5}}}, create=False) as store:
        assert isinstance(store, MineStore)
        assert store.options == MineConfig(retries=5)
    [(config, create, options)] = received
    assert create is False
    assert options is config.store.options(MineConfig)


def test_unknown_key_has_a_did_you_mean(mine: None, tmp_path: Path) -> None:
    path = write(tmp_path, '[store.mine]\nurll = "mine://x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value) == (
        f"{path}: unknown key 'store.mine.urll'; did you mean 'url'? "
        "(known keys: url, retries, mode, cache_dir)"
    )


def test_wrong_type_names_the_key_and_the_file(mine: None, tmp_path: Path) -> None:
    path = write(tmp_path, '[store.mine]\nretries = "many"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value) == (f"{path}: store.mine.retries: Expected `int`, got `str` (got 'many')")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"mode": "slow"},
            "config: store.mine.mode: Invalid enum value 'slow'; choose one of fast, safe",
        ),
        ({"retries": 11}, "config: store.mine.retries must be >= 0 and <= 10 (got 11)"),
        ({"url": "http://x"}, "config: store.mine.url: 'http://x' is not a mine:// address"),
        (3, "config: store.mine: Expected `object`, got `int` (got 3)"),
    ],
)
def test_bad_values_fail_like_the_built_ins(mine: None, table: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"store": {"mine": table}}, env={})
    assert str(err.value) == message


def test_env_interpolation_and_overrides(mine: None, tmp_path: Path) -> None:
    path = write(tmp_path, '[store.mine]\nurl = "mine://${HOST}"\n')
    assert load_config(path, env={"HOST": "h1"}).store.options(MineConfig).url == "mine://h1"
    cfg = load_config(path, env={"HOST": "h1", "MINE_URL": "mine://h2"})
    assert cfg.store.options(MineConfig).url == "mine://h2"
    assert env_overrides()["MINE_URL"] == ("store", "mine", "url")
    with pytest.raises(ConfigError) as err:  # the message says where the value came from
        load_config(path, env={"HOST": "h1", "MINE_URL": "ftp://x"})
    assert (
        str(err.value)
        == "MINE_URL (environment): store.mine.url: 'ftp://x' is not a mine:// address"
    )


def test_the_table_is_validated_whatever_the_backend(mine: None) -> None:
    """As for the built-ins: a broken table fails even when another backend is chosen."""
    with pytest.raises(ConfigError, match=r"store\.mine\.retries"):
        load_config({"store": {"backend": "memory", "mine": {"retries": 99}}}, env={})
    cfg = load_config({"store": {"backend": "memory"}}, env={})
    assert cfg.store.options(MineConfig) == MineConfig()  # the defaults


def test_a_backend_without_options_takes_an_empty_table() -> None:
    register_backend("plain", lambda cfg: MemoryEventStore())
    try:
        assert load_config({"store": {"plain": {}}}, env={}).store.sections["plain"] == NoOptions()
        with pytest.raises(ConfigError) as err:
            load_config({"store": {"plain": {"x": 1}}}, env={})
        assert str(err.value) == "config: unknown key 'store.plain.x' (known keys: none)"
        with open_store({"store": {"backend": "plain"}}) as store:
            assert isinstance(store, MemoryEventStore)
    finally:
        _REGISTRY.pop("plain")


def test_a_lazy_registration_is_imported_when_needed(tmp_path: Path) -> None:
    register_backend("lazy", "tests.test_registry:make_mine", "tests.test_registry:MineConfig")
    try:
        cfg = load_config({"store": {"backend": "lazy", "lazy": {"retries": 1}}}, env={})
        assert cfg.store.options(MineConfig).retries == 1
    finally:
        _REGISTRY.pop("lazy")


def test_unknown_backend_lists_the_registered_ones(mine: None) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"store": {"backend": "mien"}}, env={})
    # (other test modules may register backends of their own: tests/thirdparty)
    assert str(err.value) == (
        f"config: store.backend: unknown backend 'mien'; choose one of {', '.join(backend_names())}"
    )
    assert {"eventstoredb", "file", "http", "memory", "mine", "postgres"} <= set(backend_names())
    with pytest.raises(ConfigError) as err:
        load_config({"store": {"mien": {}}}, env={})
    assert "did you mean 'mine'?" in str(err.value)


def test_options_of_a_config_built_in_code() -> None:
    from eventvault.backends.file.config import FileConfig

    cfg = Config()
    assert cfg.store.options(FileConfig) == FileConfig()
    store = cfg.store.with_options(FileConfig(path="/x"))
    assert store.options(FileConfig).path == "/x"
    assert store.sections == {"file": FileConfig(path="/x")}


def test_loading_a_config_imports_no_driver() -> None:
    """The built-in backends register lazily, and their config modules need msgspec
    only: importing eventvault and loading any configuration imports no driver."""
    code = (
        "import sys\n"
        "import eventvault.backends.postgres.config, eventvault.backends.http.config\n"
        "import eventvault.backends.eventstoredb.config\n"
        "from eventvault import load_config\n"
        "load_config({'store': {'backend': 'postgres', 'postgres': {'dsn': 'x'}}}, env={})\n"
        "bad = {'psycopg', 'psycopg_pool', 'httpx', 'kurrentdbclient', 'grpc'} & set(sys.modules)\n"
        "assert not bad, bad\n"
        # nor a backend's own modules: only the config modules of the registered ones
        # (found by the PostgreSQL open time in the issue 18 bench: +80 ms for the
        # file backend imported through its package)
        "loaded = {m for m in sys.modules if m.startswith('eventvault.backends.')}\n"
        "heavy = {m for m in loaded if m.count('.') >= 3 and not m.endswith('.config')}\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_register_backend_refuses_what_would_break_every_load() -> None:
    """Found in review: a type with a required field failed every load (whatever
    backend was chosen), one without forbid_unknown_fields let typos through, a bad
    "module:Class" string raised ModuleNotFoundError from every load, and a backend
    named after a [store] key vanished into it."""

    class Required(msgspec.Struct, forbid_unknown_fields=True):
        url: str

    class Lax(msgspec.Struct):
        path: str = "x"

    with pytest.raises(ConfigError, match="needs a default for every field"):
        register_backend("req", make_mine, Required)
    with pytest.raises(ConfigError, match="must forbid unknown fields"):
        register_backend("lax", make_mine, Lax)
    with pytest.raises(ConfigError, match=r"must be a msgspec\.Struct"):
        register_backend("odd", make_mine, dict)  # type: ignore[arg-type]
    for bad in ("backend", "max_event_bytes", "My-Store", ""):
        with pytest.raises(ConfigError, match="cannot register a backend named"):
            register_backend(bad, make_mine, MineConfig)
    assert not {"req", "lax", "odd", "backend"} & set(backend_names())
    register_backend("typo", make_mine, "no_such_module_xyz:Options")
    try:
        with pytest.raises(ConfigError, match="backend 'typo' is registered as"):
            load_config({"store": {"backend": "memory"}}, env={})
    finally:
        _REGISTRY.pop("typo")
    load_config({"store": {"backend": "memory"}}, env={})  # the registry is sound again


def test_an_installed_plugin_is_found_from_any_configuration(tmp_path: Path) -> None:
    """A package declares its backend under the ``eventvault.backends`` entry-point
    group; a configuration naming it works with no import in user code — the CLI
    included (found in review: a third-party backend was library-only)."""
    site = tmp_path / "site"
    (site / "evplug-1.0.dist-info").mkdir(parents=True)
    (site / "evplug-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: evplug\nVersion: 1.0\n"
    )
    (site / "evplug-1.0.dist-info" / "entry_points.txt").write_text(
        "[eventvault.backends]\nplug = evplug\n"
    )
    (site / "evplug.py").write_text(
        "import msgspec\n"
        "from eventvault import MemoryEventStore, register_backend\n"
        "class PlugOptions(msgspec.Struct, forbid_unknown_fields=True):\n"
        "    label: str = 'x'\n"
        "def make(config, *, options):\n"
        "    return MemoryEventStore()\n"
        "register_backend('plug', make, PlugOptions)\n"
    )
    cfg = tmp_path / "eventvault.toml"
    cfg.write_text('[store]\nbackend = "plug"\n[store.plug]\nlabel = "y"\n')
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "eventvault.cli", "--config", str(cfg), "stats", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backend"] == "memory"
    cfg.write_text('[store]\nbackend = "plug"\n[store.plug]\nlabl = "y"\n')
    done = subprocess.run(
        [sys.executable, "-m", "eventvault.cli", "--config", str(cfg), "stats"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "store.plug" in done.stderr
    assert "did you mean 'label'" in done.stderr
