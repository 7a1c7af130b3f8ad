"""An integrator's plugin, installed with pip, appears with no change to core code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_runner import NPROXY, write_ini
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.wiring import find_service

# The plugins are built once, by one xdist worker (under ``--dist loadgroup``).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("plugin-builds")]

PROVIDER_SOURCE = '''
"""A throwaway provider, importing only nproxy's public plugin interface."""
from nproxy_core.plugins import AttemptResult, GeneratedImage, Mode, ModelCapabilities, Provider


class ThrowawayProvider(Provider):
    def capabilities(self):
        return [ModelCapabilities(model="throwaway-1", modes=(Mode.TEXT_TO_IMAGE,),
                                  resolutions=("square",))]

    def generate(self, request, *, api_key, proxy_url=None):
        return AttemptResult(image=GeneratedImage(data=b"x", mime="image/png"))
'''


def build_and_install(tmp: Path, dist: str, module: str, source: str, entry: str) -> Path:
    """Build a tiny distribution and pip-install it into a folder of its own."""
    project = tmp / dist
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(source)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.0.1"

            [project.entry-points."nproxy.providers"]
            {entry}

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    target = tmp / f"site-{dist}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("plugins")
    return {
        "good": build_and_install(
            tmp,
            "nproxy-throwaway",
            "throwaway_provider",
            PROVIDER_SOURCE,
            'throwaway = "throwaway_provider:ThrowawayProvider"',
        ),
        "broken": build_and_install(
            tmp,
            "nproxy-broken",
            "broken_provider",
            "raise ImportError('missing dependency')\n",
            'broken = "broken_provider:Provider"',
        ),
        "duplicate": build_and_install(
            tmp,
            "nproxy-impostor",
            "impostor_provider",
            PROVIDER_SOURCE,
            'demo = "impostor_provider:ThrowawayProvider"',
        ),
    }


def run(ini: Path, site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [*NPROXY, "-c", str(ini), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_installed_plugin_is_listed_and_can_be_enabled(installed, tmp_path, base_settings):
    ini = write_ini(tmp_path, base_settings)
    result = run(ini, installed["good"], "plugins")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("throwaway"))
    assert "available" in line and "nproxy-throwaway" in line

    ini = write_ini(tmp_path, {**base_settings, "nproxy.providers": "demo throwaway"})
    result = run(ini, installed["good"], "plugins")
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("throwaway"))
    assert "enabled" in line


def test_enabled_plugin_is_loaded_by_the_app(installed, base_settings, monkeypatch, database):
    monkeypatch.syspath_prepend(str(installed["good"]))
    from nproxy_core.config import configure

    config = configure({**base_settings, "nproxy.providers": "demo throwaway"})
    config.commit()
    provider = find_service(config.registry, IPlugins).provider("throwaway")
    assert provider.name == "throwaway"
    assert provider.capabilities()[0].model == "throwaway-1"


def test_broken_plugin_stops_start_up(installed, tmp_path, base_settings, monkeypatch):
    from nproxy_core.config import ConfigurationError, configure

    settings = {**base_settings, "nproxy.providers": "demo broken"}
    monkeypatch.syspath_prepend(str(installed["broken"]))
    with pytest.raises(ConfigurationError, match=r"plugin 'broken'.*missing dependency"):
        configure(settings)

    result = run(write_ini(tmp_path, settings), installed["broken"], "plugins")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "plugin 'broken' failed to load: missing dependency" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_plugin_name_stops_start_up(installed, tmp_path, base_settings):
    ini = write_ini(tmp_path, base_settings)
    result = run(ini, installed["duplicate"], "plugins")
    assert result.returncode != 0
    assert "duplicate plugin 'demo'" in result.stderr
