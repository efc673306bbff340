import datetime

from agentic_labeling.v1 import common_pb2 as _common_pb2
from agentic_labeling.v1 import registry_pb2 as _registry_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_QUEUED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState

class TrainingRun(_message.Message):
    __slots__ = ("name", "dataset", "model", "epochs", "image_size", "device", "state", "metrics", "weights_uri", "mlflow_run_id", "create_time", "end_time", "batch", "task", "class_names", "epochs_completed", "operation", "error_message")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_URI_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset: str
    model: str
    epochs: int
    image_size: int
    device: str
    state: RunState
    metrics: _containers.ScalarMap[str, float]
    weights_uri: str
    mlflow_run_id: str
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    batch: int
    task: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    epochs_completed: int
    operation: str
    error_message: str
    def __init__(self, name: _Optional[str] = ..., dataset: _Optional[str] = ..., model: _Optional[str] = ..., epochs: _Optional[int] = ..., image_size: _Optional[int] = ..., device: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., weights_uri: _Optional[str] = ..., mlflow_run_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., batch: _Optional[int] = ..., task: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., epochs_completed: _Optional[int] = ..., operation: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("dataset", "model", "epochs", "image_size", "device", "request_id", "batch")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    model: str
    epochs: int
    image_size: int
    device: str
    request_id: str
    batch: int
    def __init__(self, dataset: _Optional[str] = ..., model: _Optional[str] = ..., epochs: _Optional[int] = ..., image_size: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., batch: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("dataset", "split", "run", "detection_model", "iou_threshold", "request_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    DETECTION_MODEL_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    split: str
    run: str
    detection_model: str
    iou_threshold: float
    request_id: str
    def __init__(self, dataset: _Optional[str] = ..., split: _Optional[str] = ..., run: _Optional[str] = ..., detection_model: _Optional[str] = ..., iou_threshold: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("class_name", "ap50", "ap50_95", "precision", "recall", "support")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AP50_FIELD_NUMBER: _ClassVar[int]
    AP50_95_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    ap50: float
    ap50_95: float
    precision: float
    recall: float
    support: int
    def __init__(self, class_name: _Optional[str] = ..., ap50: _Optional[float] = ..., ap50_95: _Optional[float] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., support: _Optional[int] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("labels", "counts")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("dataset", "split", "map50", "map50_95", "per_class", "confusion_matrix", "name", "run", "detection_model", "mlflow_run_id", "create_time", "image_count")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    MAP50_FIELD_NUMBER: _ClassVar[int]
    MAP50_95_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    DETECTION_MODEL_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    split: str
    map50: float
    map50_95: float
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    confusion_matrix: ConfusionMatrix
    name: str
    run: str
    detection_model: str
    mlflow_run_id: str
    create_time: _timestamp_pb2.Timestamp
    image_count: int
    def __init__(self, dataset: _Optional[str] = ..., split: _Optional[str] = ..., map50: _Optional[float] = ..., map50_95: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., confusion_matrix: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., name: _Optional[str] = ..., run: _Optional[str] = ..., detection_model: _Optional[str] = ..., mlflow_run_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., image_count: _Optional[int] = ...) -> None: ...

class ListEvaluationsRequest(_message.Message):
    __slots__ = ("run", "page_size", "page_token")
    RUN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run: str
    page_size: int
    page_token: str
    def __init__(self, run: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEvaluationsResponse(_message.Message):
    __slots__ = ("evaluations", "next_page_token")
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    evaluations: _containers.RepeatedCompositeFieldContainer[Evaluation]
    next_page_token: str
    def __init__(self, evaluations: _Optional[_Iterable[_Union[Evaluation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportRunRequest(_message.Message):
    __slots__ = ("name", "model_repository", "model_name")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_repository: str
    model_name: str
    def __init__(self, name: _Optional[str] = ..., model_repository: _Optional[str] = ..., model_name: _Optional[str] = ...) -> None: ...

class ExportRunResponse(_message.Message):
    __slots__ = ("model_dir", "model_name", "class_names")
    MODEL_DIR_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    model_dir: str
    model_name: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_dir: _Optional[str] = ..., model_name: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ...) -> None: ...

class ReviewStrategy(_message.Message):
    __slots__ = ("uncertainty", "diversity", "disagreement")
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    uncertainty: float
    diversity: float
    disagreement: float
    def __init__(self, uncertainty: _Optional[float] = ..., diversity: _Optional[float] = ..., disagreement: _Optional[float] = ...) -> None: ...

class SuggestForReviewRequest(_message.Message):
    __slots__ = ("filter", "count", "strategy", "run", "decision_threshold")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    DECISION_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    filter: str
    count: int
    strategy: ReviewStrategy
    run: str
    decision_threshold: float
    def __init__(self, filter: _Optional[str] = ..., count: _Optional[int] = ..., strategy: _Optional[_Union[ReviewStrategy, _Mapping]] = ..., run: _Optional[str] = ..., decision_threshold: _Optional[float] = ...) -> None: ...

class ReviewSuggestion(_message.Message):
    __slots__ = ("object", "score", "reasons", "source", "frame_index", "missed_box", "missed_class_name")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    MISSED_BOX_FIELD_NUMBER: _ClassVar[int]
    MISSED_CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    object: _registry_pb2.LabeledObject
    score: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    source: str
    frame_index: int
    missed_box: _common_pb2.BoundingBox
    missed_class_name: str
    def __init__(self, object: _Optional[_Union[_registry_pb2.LabeledObject, _Mapping]] = ..., score: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., frame_index: _Optional[int] = ..., missed_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., missed_class_name: _Optional[str] = ...) -> None: ...

class SuggestForReviewResponse(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[ReviewSuggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[ReviewSuggestion, _Mapping]]] = ...) -> None: ...
