import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SupportEvent(_message.Message):
    __slots__ = ("event_id", "type", "topic", "entity_type", "entity_id", "source", "actor_id", "payload", "created_at", "position")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    topic: str
    entity_type: str
    entity_id: str
    source: str
    actor_id: str
    payload: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    position: int
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., topic: _Optional[str] = ..., entity_type: _Optional[str] = ..., entity_id: _Optional[str] = ..., source: _Optional[str] = ..., actor_id: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class EventResponse(_message.Message):
    __slots__ = ("event_id", "duplicate", "position", "topic")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    duplicate: bool
    position: int
    topic: str
    def __init__(self, event_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., position: _Optional[int] = ..., topic: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("types", "topics", "entity_type", "entity_id", "after_event_id", "from_beginning")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_BEGINNING_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedScalarFieldContainer[str]
    topics: _containers.RepeatedScalarFieldContainer[str]
    entity_type: str
    entity_id: str
    after_event_id: str
    from_beginning: bool
    def __init__(self, types: _Optional[_Iterable[str]] = ..., topics: _Optional[_Iterable[str]] = ..., entity_type: _Optional[str] = ..., entity_id: _Optional[str] = ..., after_event_id: _Optional[str] = ..., from_beginning: _Optional[bool] = ...) -> None: ...
