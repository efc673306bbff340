import datetime

from agentic_labeling.v1 import common_pb2 as _common_pb2
from agentic_labeling.v1 import registry_pb2 as _registry_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AutoLabelConfig(_message.Message):
    __slots__ = ("class_names", "min_confidence", "duplicate_iou_threshold", "max_objects_per_image", "skip_masks", "skip_embeddings", "track_objects", "skip_registered", "confidence_threshold", "detector")
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECTS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SKIP_MASKS_FIELD_NUMBER: _ClassVar[int]
    SKIP_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    TRACK_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    SKIP_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    class_names: _containers.RepeatedScalarFieldContainer[str]
    min_confidence: float
    duplicate_iou_threshold: float
    max_objects_per_image: int
    skip_masks: bool
    skip_embeddings: bool
    track_objects: bool
    skip_registered: bool
    confidence_threshold: float
    detector: str
    def __init__(self, class_names: _Optional[_Iterable[str]] = ..., min_confidence: _Optional[float] = ..., duplicate_iou_threshold: _Optional[float] = ..., max_objects_per_image: _Optional[int] = ..., skip_masks: _Optional[bool] = ..., skip_embeddings: _Optional[bool] = ..., track_objects: _Optional[bool] = ..., skip_registered: _Optional[bool] = ..., confidence_threshold: _Optional[float] = ..., detector: _Optional[str] = ...) -> None: ...

class FramePosition(_message.Message):
    __slots__ = ("video_key", "frame_index", "timestamp", "video_width", "video_height", "video_frame_count")
    VIDEO_KEY_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VIDEO_WIDTH_FIELD_NUMBER: _ClassVar[int]
    VIDEO_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    video_key: str
    frame_index: int
    timestamp: _duration_pb2.Duration
    video_width: int
    video_height: int
    video_frame_count: int
    def __init__(self, video_key: _Optional[str] = ..., frame_index: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., video_width: _Optional[int] = ..., video_height: _Optional[int] = ..., video_frame_count: _Optional[int] = ...) -> None: ...

class AutoLabelItem(_message.Message):
    __slots__ = ("client_id", "image", "display_name", "frame")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    image: _common_pb2.Image
    display_name: str
    frame: FramePosition
    def __init__(self, client_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., display_name: _Optional[str] = ..., frame: _Optional[_Union[FramePosition, _Mapping]] = ...) -> None: ...

class AutoLabelRequest(_message.Message):
    __slots__ = ("config", "item")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    config: AutoLabelConfig
    item: AutoLabelItem
    def __init__(self, config: _Optional[_Union[AutoLabelConfig, _Mapping]] = ..., item: _Optional[_Union[AutoLabelItem, _Mapping]] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("decode", "detect", "segment", "embed", "register", "total")
    DECODE_FIELD_NUMBER: _ClassVar[int]
    DETECT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    EMBED_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    decode: _duration_pb2.Duration
    detect: _duration_pb2.Duration
    segment: _duration_pb2.Duration
    embed: _duration_pb2.Duration
    register: _duration_pb2.Duration
    total: _duration_pb2.Duration
    def __init__(self, decode: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., detect: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., segment: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., embed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., register: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AutoLabelResponse(_message.Message):
    __slots__ = ("client_id", "status", "source", "frame_index", "objects", "already_registered", "timings", "merged_objects")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MERGED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    status: _status_pb2.Status
    source: str
    frame_index: int
    objects: _containers.RepeatedCompositeFieldContainer[_registry_pb2.LabeledObject]
    already_registered: bool
    timings: StageTimings
    merged_objects: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., source: _Optional[str] = ..., frame_index: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[_registry_pb2.LabeledObject, _Mapping]]] = ..., already_registered: _Optional[bool] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., merged_objects: _Optional[_Iterable[str]] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("image", "class_names", "min_confidence", "max_detections", "confidence_threshold")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    class_names: _containers.RepeatedScalarFieldContainer[str]
    min_confidence: float
    max_detections: int
    confidence_threshold: float
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., min_confidence: _Optional[float] = ..., max_detections: _Optional[int] = ..., confidence_threshold: _Optional[float] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("bbox", "class_name", "confidence")
    BBOX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    bbox: _common_pb2.BoundingBox
    class_name: str
    confidence: float
    def __init__(self, bbox: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., class_name: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("detections", "image_width", "image_height", "model")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    image_width: int
    image_height: int
    model: str
    def __init__(self, detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ("image", "boxes")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ...) -> None: ...

class SegmentedObject(_message.Message):
    __slots__ = ("mask", "predicted_iou")
    MASK_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_IOU_FIELD_NUMBER: _ClassVar[int]
    mask: _common_pb2.Mask
    predicted_iou: float
    def __init__(self, mask: _Optional[_Union[_common_pb2.Mask, _Mapping]] = ..., predicted_iou: _Optional[float] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("masks", "model")
    MASKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    masks: _containers.RepeatedCompositeFieldContainer[SegmentedObject]
    model: str
    def __init__(self, masks: _Optional[_Iterable[_Union[SegmentedObject, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("image", "boxes", "masks")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    MASKS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    masks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mask]
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ..., masks: _Optional[_Iterable[_Union[_common_pb2.Mask, _Mapping]]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dimension", "model")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Embedding]
    dimension: int
    model: str
    def __init__(self, embeddings: _Optional[_Iterable[_Union[_common_pb2.Embedding, _Mapping]]] = ..., dimension: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class GetMeshStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("name", "version", "ready", "reason", "inference_count", "execution_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    ready: bool
    reason: str
    inference_count: int
    execution_count: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., ready: _Optional[bool] = ..., reason: _Optional[str] = ..., inference_count: _Optional[int] = ..., execution_count: _Optional[int] = ...) -> None: ...

class ComponentStatus(_message.Message):
    __slots__ = ("address", "reachable", "version", "message")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    address: str
    reachable: bool
    version: str
    message: str
    def __init__(self, address: _Optional[str] = ..., reachable: _Optional[bool] = ..., version: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MeshStatus(_message.Message):
    __slots__ = ("version", "triton", "models", "registry", "window_size", "images_in_flight", "random_weights", "served_embedding_dimension", "registry_embedding_dimension")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRITON_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RANDOM_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SERVED_EMBEDDING_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_EMBEDDING_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    triton: ComponentStatus
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    registry: ComponentStatus
    window_size: int
    images_in_flight: int
    random_weights: bool
    served_embedding_dimension: int
    registry_embedding_dimension: int
    def __init__(self, version: _Optional[str] = ..., triton: _Optional[_Union[ComponentStatus, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ..., registry: _Optional[_Union[ComponentStatus, _Mapping]] = ..., window_size: _Optional[int] = ..., images_in_flight: _Optional[int] = ..., random_weights: _Optional[bool] = ..., served_embedding_dimension: _Optional[int] = ..., registry_embedding_dimension: _Optional[int] = ...) -> None: ...
