"""SuggestForReview on a real registry process (the session's training mesh: Postgres, Qdrant,
the tiny trained run): uncertainty ranks the near-threshold object first with its reasons, the
filter bounds the candidates, a trained run's disagreement yields well-formed suggestions naming
its classes, and every bad request is refused with a precise status.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence

import grpc
import pytest
from dataset_mesh import HEIGHT, WIDTH, bbox, pair, photo, ring
from google.longrunning import operations_pb2
from training_mesh import (
    TrainingMesh,
    error_info,
    operation_target,
    refused,
    skip_unless_training_installed,
)

from agentic_labeling.models.mask_codec import masks_to_rle
from agentic_labeling.v1 import (
    common_pb2,
    dataset_pb2,
    registry_pb2,
    training_pb2,
)

skip_unless_training_installed()

PROBE = "uncertainty-probe"
PHOTOS = "unreviewed-photos"
CONFIDENCES = (0.1, 0.48, 0.95, 0.7)


def _create_objects(
    mesh: TrainingMesh,
    source: str,
    objects: Sequence[tuple[str, common_pb2.BoundingBox, float, common_pb2.Mask | None]],
    detection_model: str,
) -> list[registry_pb2.LabeledObject]:
    created = mesh.registry.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source,
                        category_name=name,
                        bbox=box,
                        confidence=confidence,
                        detection_model=detection_model,
                    ),
                    mask=mask,
                )
                for name, box, confidence, mask in objects
            ],
        ),
        timeout=30,
    )
    return list(created.objects)


def _source(mesh: TrainingMesh, display_name: str, image: bytes = b"") -> str:
    return mesh.registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=WIDTH,
                height=HEIGHT,
                display_name=display_name,
            ),
            image_data=image,
        ),
        timeout=30,
    ).name


@pytest.fixture(scope="module")
def probes(
    training_mesh: TrainingMesh, shapes_dataset: dataset_pb2.Dataset
) -> list[registry_pb2.LabeledObject]:
    """Unvalidated rings on one image without a file, one per confidence in CONFIDENCES."""
    source = _source(training_mesh, "probes.png")
    created = _create_objects(
        training_mesh,
        source,
        [
            ("ring", common_pb2.BoundingBox(x=i * 20, y=5, width=15, height=15), c, None)
            for i, c in enumerate(CONFIDENCES)
        ],
        PROBE,
    )
    return created


@pytest.fixture(scope="module")
def photos(training_mesh: TrainingMesh, shapes_dataset: dataset_pb2.Dataset) -> list[str]:
    """Four unreviewed photos like the training's, each with a ring and a pair (masks included);
    their sources."""
    sources = []
    for seed in range(100, 104):
        source = _source(training_mesh, f"unreviewed {seed}.png", photo(seed))
        masks = {"ring": ring(5 + seed % 30), "pair": pair()}
        _create_objects(
            training_mesh,
            source,
            [
                (
                    name,
                    bbox(mask),
                    0.9,
                    common_pb2.Mask(
                        rle=common_pb2.RunLengthEncoding(
                            height=HEIGHT, width=WIDTH, counts=masks_to_rle(mask)
                        )
                    ),
                )
                for name, mask in masks.items()
            ],
            PHOTOS,
        )
        sources.append(source)
    return sources


def _suggest(mesh: TrainingMesh, **fields: object) -> list[training_pb2.ReviewSuggestion]:
    response = mesh.training.SuggestForReview(
        training_pb2.SuggestForReviewRequest(**fields),  # type: ignore[arg-type]
        timeout=120,
    )
    return list(response.suggestions)


def _uncertainty_only() -> training_pb2.ReviewStrategy:
    return training_pb2.ReviewStrategy(uncertainty=1)


# --- ranking ----------------------------------------------------------------------------------


def test_uncertainty_ranks_the_object_nearest_the_threshold_first(
    training_mesh: TrainingMesh, probes: list[registry_pb2.LabeledObject]
) -> None:
    suggestions = _suggest(
        training_mesh, filter=f'detection_model = "{PROBE}"', strategy=_uncertainty_only()
    )
    assert [s.object.confidence for s in suggestions] == pytest.approx([0.48, 0.7, 0.1, 0.95])
    first = suggestions[0]
    assert first.object.name == probes[1].name
    assert first.reasons == ["confidence 0.48 near the threshold 0.50"]
    scores = [s.score for s in suggestions]
    assert scores == sorted(scores, reverse=True)


def test_each_suggested_object_comes_whole_with_its_image_and_reasons(
    training_mesh: TrainingMesh, probes: list[registry_pb2.LabeledObject]
) -> None:
    suggestions = _suggest(
        training_mesh, filter=f'detection_model = "{PROBE}"', strategy=_uncertainty_only()
    )
    by_name = {o.name: o for o in probes}
    for s in suggestions:
        stored = by_name[s.object.name]
        assert s.object == stored  # the LabeledObject as BatchCreateObjects returned it
        assert s.source == stored.source
        assert s.frame_index == 0
        assert s.reasons
        assert not s.HasField("missed_box")
        assert s.missed_class_name == ""


def test_the_decision_threshold_moves_what_is_uncertain(
    training_mesh: TrainingMesh, probes: list[registry_pb2.LabeledObject]
) -> None:
    suggestions = _suggest(
        training_mesh,
        filter=f'detection_model = "{PROBE}"',
        strategy=_uncertainty_only(),
        decision_threshold=0.75,
        count=1,
    )
    assert [s.object.confidence for s in suggestions] == pytest.approx([0.7])
    assert suggestions[0].reasons == ["confidence 0.70 near the threshold 0.75"]


def test_the_filter_bounds_the_candidates(
    training_mesh: TrainingMesh, probes: list[registry_pb2.LabeledObject]
) -> None:
    suggestions = _suggest(
        training_mesh,
        filter=f'detection_model = "{PROBE}" AND confidence < 0.5',
        strategy=_uncertainty_only(),
    )
    assert sorted(s.object.confidence for s in suggestions) == pytest.approx([0.1, 0.48])


def test_count_caps_the_suggestions_and_validated_objects_are_never_suggested(
    training_mesh: TrainingMesh, probes: list[registry_pb2.LabeledObject]
) -> None:
    assert len(_suggest(training_mesh, filter=f'detection_model = "{PROBE}"', count=2)) == 2
    everything = _suggest(training_mesh, count=1000)
    assert everything
    assert not any(s.object.is_validated for s in everything)


def test_disagreement_with_a_trained_run_gives_well_formed_suggestions_naming_its_classes(
    training_mesh: TrainingMesh,
    trained_run: training_pb2.TrainingRun,
    photos: list[str],
) -> None:
    # A low threshold keeps more of a two-epoch model's boxes: extra, different class and
    # missed all have a chance. Which ones appear depends on the training: the form is checked.
    suggestions = _suggest(
        training_mesh,
        filter=f'detection_model = "{PHOTOS}"',
        strategy=training_pb2.ReviewStrategy(disagreement=1),
        run=trained_run.name,
        decision_threshold=0.01,
        count=100,
    )
    assert suggestions
    classes = set(trained_run.class_names)
    scores = [s.score for s in suggestions]
    assert scores == sorted(scores, reverse=True)
    assert all(math.isfinite(score) and 0 <= score <= 1 for score in scores)
    objects = [s for s in suggestions if s.HasField("object")]
    assert len(objects) == 8  # every candidate, disagreeing or not
    for s in suggestions:
        assert s.source in photos
        if s.HasField("object"):
            assert s.object.detection_model == PHOTOS
            assert s.object.source == s.source
            assert not s.HasField("missed_box")
        else:
            assert s.missed_class_name in classes
            assert min(s.missed_box.width, s.missed_box.height) > 0
            assert s.reasons
        for reason in s.reasons:
            assert reason.startswith("trained model"), reason
            named = set(re.findall(r"'([^']+)'", reason))
            assert named, reason
            assert named <= classes, reason
        if s.score > 0:
            assert s.reasons
    print(f"{len(suggestions)} suggestions:", *(f"{s.score:.3f} {s.reasons}" for s in suggestions))


# --- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"count": -1}, "count"),
        ({"count": 1001}, "count"),
        ({"filter": "confidence >>> 1"}, "filter"),
        ({"filter": "colour = 3"}, "filter"),
        ({"decision_threshold": 1.0}, "decision_threshold"),
        ({"decision_threshold": -0.2}, "decision_threshold"),
        ({"decision_threshold": math.nan}, "decision_threshold"),
        ({"strategy": training_pb2.ReviewStrategy(uncertainty=-1)}, "strategy.uncertainty"),
        ({"strategy": training_pb2.ReviewStrategy(diversity=math.inf)}, "strategy.diversity"),
        ({"strategy": training_pb2.ReviewStrategy(disagreement=math.nan)}, "strategy.disagreement"),
        ({"run": "runs/7"}, "run"),
        ({"run": "datasets/" + str(uuid.uuid4())}, "run"),
    ],
)
def test_bad_suggestion_requests_are_invalid_argument_naming_the_field(
    training_mesh: TrainingMesh, fields: dict[str, object], field: str
) -> None:
    error = refused(
        training_mesh.training.SuggestForReview,
        training_pb2.SuggestForReviewRequest(**fields),  # type: ignore[arg-type]
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error_info(error)[1] == [field]


def test_suggesting_with_an_unknown_run_is_not_found(training_mesh: TrainingMesh) -> None:
    error = refused(
        training_mesh.training.SuggestForReview,
        training_pb2.SuggestForReviewRequest(run=f"runs/{uuid.uuid4()}"),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def busy_then_cancelled(
    training_mesh: TrainingMesh,
    shapes_dataset: dataset_pb2.Dataset,
    trained_run: training_pb2.TrainingRun,
    photos: list[str],
) -> tuple[grpc.RpcError, str]:
    """What suggesting with the trained run answers while a long training holds its device
    (cpu), and the long run's name once it is cancelled."""
    long = training_mesh.start(shapes_dataset.name, epochs=1000)
    long_run = operation_target(long)
    try:
        training_mesh.wait_state(long_run, training_pb2.RUN_STATE_RUNNING)
        error = refused(
            training_mesh.training.SuggestForReview,
            training_pb2.SuggestForReviewRequest(
                filter=f'detection_model = "{PHOTOS}"', run=trained_run.name
            ),
        )
    finally:
        training_mesh.operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=long.name)
        )
        training_mesh.finish(long)
    return error, long_run


def test_suggesting_with_a_run_while_its_device_trains_is_failed_precondition(
    busy_then_cancelled: tuple[grpc.RpcError, str],
) -> None:
    error, _ = busy_then_cancelled
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error)[0] == "DEVICE_BUSY"
    assert "'cpu' is training" in (error.details() or "")


def test_suggesting_with_a_run_that_did_not_succeed_is_failed_precondition(
    training_mesh: TrainingMesh, busy_then_cancelled: tuple[grpc.RpcError, str]
) -> None:
    _, cancelled = busy_then_cancelled
    assert training_mesh.run(cancelled).state == training_pb2.RUN_STATE_CANCELLED
    error = refused(
        training_mesh.training.SuggestForReview,
        training_pb2.SuggestForReviewRequest(run=cancelled),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error)[0] == "RUN_NOT_SUCCEEDED"
    assert "CANCELLED" in (error.details() or "").upper()
