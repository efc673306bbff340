"""The real grpcurl binary against the real servers, through reflection only (no .proto files)."""

from __future__ import annotations

import base64
import json
import subprocess

from real_parts import GRPCURL, Mesh


def grpcurl(address: str, *args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(GRPCURL), "-plaintext", "-max-time", "15"]
    if data is not None:
        command += ["-d", data]
    return subprocess.run(
        [*command, address, *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_grpcurl_lists_every_service_of_each_server(mesh: Mesh) -> None:
    registry = grpcurl(mesh.registry.address, "list")
    orchestrator = grpcurl(mesh.orchestrator.address, "list")
    assert registry.returncode == 0, registry.stderr
    assert registry.stdout.split() == [
        "agentic_labeling.v1.DatasetService",
        "agentic_labeling.v1.RegistryService",
        "agentic_labeling.v1.TrainingService",
        "google.longrunning.Operations",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    assert orchestrator.stdout.split() == [
        "agentic_labeling.v1.LabelingService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


def test_grpcurl_describes_a_method(mesh: Mesh) -> None:
    result = grpcurl(
        mesh.registry.address, "describe", "agentic_labeling.v1.RegistryService.ListObjects"
    )
    assert result.returncode == 0, result.stderr
    assert "rpc ListObjects ( .agentic_labeling.v1.ListObjectsRequest )" in result.stdout
    assert "returns ( .agentic_labeling.v1.ListObjectsResponse )" in result.stdout


def test_grpcurl_describes_a_request_message(mesh: Mesh) -> None:
    result = grpcurl(mesh.orchestrator.address, "describe", "agentic_labeling.v1.DetectRequest")
    assert result.returncode == 0, result.stderr
    assert "repeated string class_names = 2" in result.stdout


def test_grpcurl_health_check_is_serving(mesh: Mesh) -> None:
    for address in (mesh.registry.address, mesh.orchestrator.address):
        result = grpcurl(address, "grpc.health.v1.Health/Check")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"status": "SERVING"}


def test_grpcurl_health_check_of_one_service_is_serving(mesh: Mesh) -> None:
    result = grpcurl(
        mesh.registry.address,
        "grpc.health.v1.Health/Check",
        data='{"service": "agentic_labeling.v1.RegistryService"}',
    )
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_grpcurl_bad_filter_shows_invalid_argument_naming_the_field(mesh: Mesh) -> None:
    result = grpcurl(
        mesh.registry.address,
        "agentic_labeling.v1.RegistryService/ListObjects",
        data='{"filter": "confidence >>= 0.5"}',
    )
    assert result.returncode != 0
    assert "Code: InvalidArgument" in result.stderr
    assert '"field":"filter"' in result.stderr.replace(" ", "")


def test_grpcurl_detect_with_a_corrupt_image_names_image_data(mesh: Mesh) -> None:
    corrupt = base64.b64encode(b"\x89PNG this is not really a png").decode()
    result = grpcurl(
        mesh.orchestrator.address,
        "agentic_labeling.v1.LabelingService/Detect",
        data=json.dumps({"image": {"data": corrupt}, "class_names": ["cat"]}),
    )
    assert "Code: InvalidArgument" in result.stderr
    assert '"field":"image.data"' in result.stderr.replace(" ", "")
