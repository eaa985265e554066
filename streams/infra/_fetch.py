"""The Kafka broker's jars, resolved from Maven Central once and cached outside the repo.

Maven (not a tarball download) is the one tool every CI machine here has for Java
artifacts, and it checks every jar's hash. The jars land in
``cache_dir/kafka-VERSION/libs``; a marker file written after a complete copy lets later
runs skip Maven entirely, and a half-finished copy (Ctrl-C, network error) is never taken
for a complete one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from streams.exceptions import InfraError
from streams.infra._process import exclusive, tail_lines
from streams.infra._status import Progress, quiet
from streams.settings import Settings

__all__ = ["INFRA_DIR", "fetch_kafka", "kafka_home", "kafka_libs_complete", "kafka_libs_dir"]

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
"""The repository's ``infra/`` folder: the Maven POM and the broker's config templates."""

MARKER = ".complete"
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[A-Za-z0-9.]+)?$")
_MAVEN_TIMEOUT_S = 1800.0


def _version(settings: Settings) -> str:
    version = settings.kafka_version
    if not _VERSION.fullmatch(version):
        raise InfraError(f"kafka_version {version!r} is not a Kafka release such as 4.1.1")
    return version


def kafka_home(settings: Settings) -> Path:
    """Return the cache directory of one Kafka version, shared by every checkout and test run."""
    return settings.cache_dir.expanduser().resolve() / f"kafka-{_version(settings)}"


def kafka_libs_dir(settings: Settings) -> Path:
    """Return where the broker's classpath (``libs/*``) lives once fetched."""
    return kafka_home(settings) / "libs"


def kafka_libs_complete(settings: Settings) -> bool:
    """Tell whether a previous fetch finished, so that Maven need not run again."""
    libs = kafka_libs_dir(settings)
    broker_jar = libs / f"kafka_2.13-{_version(settings)}.jar"
    return (libs / MARKER).is_file() and broker_jar.is_file()


def fetch_kafka(settings: Settings, on_progress: Progress = quiet) -> Path:
    """Make sure the jars of ``settings.kafka_version`` are cached; return the libs folder.

    Safe to call from several processes at once (a file lock makes the others wait for
    the first download instead of racing it).
    """
    version = _version(settings)
    libs = kafka_libs_dir(settings)
    if kafka_libs_complete(settings):
        return libs
    home = kafka_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    with exclusive(home / ".fetch.lock"):
        if kafka_libs_complete(settings):
            return libs
        on_progress(f"Fetching Apache Kafka {version} from Maven Central into {libs}")
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        try:
            _run_maven(version, staging)
            if not (staging / f"kafka_2.13-{version}.jar").is_file():
                raise InfraError(f"Maven finished but kafka_2.13-{version}.jar is missing")
            if libs.exists():
                shutil.rmtree(libs)
            staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        jars = sorted(path.name for path in libs.glob("*.jar"))
        (libs / MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
    return libs


def _run_maven(version: str, output_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(
            "Maven (mvn) is not on the PATH; it fetches the Kafka jars. "
            "Install it (e.g. apt-get install maven) and Java 17+."
        )
    pom = INFRA_DIR / "pom.xml"
    if not pom.is_file():
        raise InfraError(f"{pom} not found: run fraudstream from a source checkout")
    cmd = [
        mvn,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "--file",
        str(pom),
        "dependency:copy-dependencies",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={output_dir}",
    ]
    log = output_dir.parent / "maven.log"
    with log.open("wb") as out:
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"Maven did not finish within {_MAVEN_TIMEOUT_S:.0f} s") from exc
    if result.returncode != 0:
        raise InfraError(
            f"Maven could not fetch Apache Kafka {version} (exit {result.returncode}); "
            f"last lines of {log}:\n{tail_lines(log)}"
        )
    log.unlink()
