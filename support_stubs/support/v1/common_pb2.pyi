import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TicketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATUS_UNSPECIFIED: _ClassVar[TicketStatus]
    TICKET_STATUS_OPEN: _ClassVar[TicketStatus]
    TICKET_STATUS_IN_PROGRESS: _ClassVar[TicketStatus]
    TICKET_STATUS_PENDING: _ClassVar[TicketStatus]
    TICKET_STATUS_RESOLVED: _ClassVar[TicketStatus]
    TICKET_STATUS_CLOSED: _ClassVar[TicketStatus]

class TicketPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_PRIORITY_UNSPECIFIED: _ClassVar[TicketPriority]
    TICKET_PRIORITY_LOW: _ClassVar[TicketPriority]
    TICKET_PRIORITY_MEDIUM: _ClassVar[TicketPriority]
    TICKET_PRIORITY_HIGH: _ClassVar[TicketPriority]
    TICKET_PRIORITY_URGENT: _ClassVar[TicketPriority]

class TicketChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_CHANNEL_UNSPECIFIED: _ClassVar[TicketChannel]
    TICKET_CHANNEL_WEB: _ClassVar[TicketChannel]
    TICKET_CHANNEL_CHAT: _ClassVar[TicketChannel]
    TICKET_CHANNEL_EMAIL: _ClassVar[TicketChannel]
    TICKET_CHANNEL_API: _ClassVar[TicketChannel]

class ChatSessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_SESSION_STATUS_UNSPECIFIED: _ClassVar[ChatSessionStatus]
    CHAT_SESSION_STATUS_QUEUED: _ClassVar[ChatSessionStatus]
    CHAT_SESSION_STATUS_ACTIVE: _ClassVar[ChatSessionStatus]
    CHAT_SESSION_STATUS_ENDED: _ClassVar[ChatSessionStatus]
    CHAT_SESSION_STATUS_TIMED_OUT: _ClassVar[ChatSessionStatus]
    CHAT_SESSION_STATUS_ABANDONED: _ClassVar[ChatSessionStatus]

class ChatFrameType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_FRAME_TYPE_UNSPECIFIED: _ClassVar[ChatFrameType]
    CHAT_FRAME_TYPE_MESSAGE: _ClassVar[ChatFrameType]
    CHAT_FRAME_TYPE_DUPLICATE: _ClassVar[ChatFrameType]
    CHAT_FRAME_TYPE_ERROR: _ClassVar[ChatFrameType]
    CHAT_FRAME_TYPE_JOINED: _ClassVar[ChatFrameType]
    CHAT_FRAME_TYPE_ENDED: _ClassVar[ChatFrameType]
TICKET_STATUS_UNSPECIFIED: TicketStatus
TICKET_STATUS_OPEN: TicketStatus
TICKET_STATUS_IN_PROGRESS: TicketStatus
TICKET_STATUS_PENDING: TicketStatus
TICKET_STATUS_RESOLVED: TicketStatus
TICKET_STATUS_CLOSED: TicketStatus
TICKET_PRIORITY_UNSPECIFIED: TicketPriority
TICKET_PRIORITY_LOW: TicketPriority
TICKET_PRIORITY_MEDIUM: TicketPriority
TICKET_PRIORITY_HIGH: TicketPriority
TICKET_PRIORITY_URGENT: TicketPriority
TICKET_CHANNEL_UNSPECIFIED: TicketChannel
TICKET_CHANNEL_WEB: TicketChannel
TICKET_CHANNEL_CHAT: TicketChannel
TICKET_CHANNEL_EMAIL: TicketChannel
TICKET_CHANNEL_API: TicketChannel
CHAT_SESSION_STATUS_UNSPECIFIED: ChatSessionStatus
CHAT_SESSION_STATUS_QUEUED: ChatSessionStatus
CHAT_SESSION_STATUS_ACTIVE: ChatSessionStatus
CHAT_SESSION_STATUS_ENDED: ChatSessionStatus
CHAT_SESSION_STATUS_TIMED_OUT: ChatSessionStatus
CHAT_SESSION_STATUS_ABANDONED: ChatSessionStatus
CHAT_FRAME_TYPE_UNSPECIFIED: ChatFrameType
CHAT_FRAME_TYPE_MESSAGE: ChatFrameType
CHAT_FRAME_TYPE_DUPLICATE: ChatFrameType
CHAT_FRAME_TYPE_ERROR: ChatFrameType
CHAT_FRAME_TYPE_JOINED: ChatFrameType
CHAT_FRAME_TYPE_ENDED: ChatFrameType

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("id", "ticket_number", "customer_id", "agent_id", "category", "subcategory", "department", "priority", "status", "channel", "subject", "description", "customer_email", "customer_name", "assigned_at", "first_response_at", "resolved_at", "closed_at", "reopened_count", "escalation_level", "escalated_at", "first_response_due_at", "resolution_due_at", "sla_breached", "tags", "metadata", "created_at", "updated_at", "allowed_transitions")
    ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_RESPONSE_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    REOPENED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_RESPONSE_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    ticket_number: str
    customer_id: str
    agent_id: str
    category: str
    subcategory: str
    department: str
    priority: TicketPriority
    status: TicketStatus
    channel: TicketChannel
    subject: str
    description: str
    customer_email: str
    customer_name: str
    assigned_at: _timestamp_pb2.Timestamp
    first_response_at: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    closed_at: _timestamp_pb2.Timestamp
    reopened_count: int
    escalation_level: int
    escalated_at: _timestamp_pb2.Timestamp
    first_response_due_at: _timestamp_pb2.Timestamp
    resolution_due_at: _timestamp_pb2.Timestamp
    sla_breached: bool
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    allowed_transitions: _containers.RepeatedScalarFieldContainer[TicketStatus]
    def __init__(self, id: _Optional[str] = ..., ticket_number: _Optional[str] = ..., customer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., category: _Optional[str] = ..., subcategory: _Optional[str] = ..., department: _Optional[str] = ..., priority: _Optional[_Union[TicketPriority, str]] = ..., status: _Optional[_Union[TicketStatus, str]] = ..., channel: _Optional[_Union[TicketChannel, str]] = ..., subject: _Optional[str] = ..., description: _Optional[str] = ..., customer_email: _Optional[str] = ..., customer_name: _Optional[str] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_response_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reopened_count: _Optional[int] = ..., escalation_level: _Optional[int] = ..., escalated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_response_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolution_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sla_breached: _Optional[bool] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., allowed_transitions: _Optional[_Iterable[_Union[TicketStatus, str]]] = ...) -> None: ...

class Escalation(_message.Message):
    __slots__ = ("id", "trigger", "from_level", "to_level", "from_priority", "to_priority", "from_agent_id", "to_agent_id", "reason", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    FROM_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TO_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FROM_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TO_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    FROM_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    trigger: str
    from_level: int
    to_level: int
    from_priority: TicketPriority
    to_priority: TicketPriority
    from_agent_id: str
    to_agent_id: str
    reason: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., trigger: _Optional[str] = ..., from_level: _Optional[int] = ..., to_level: _Optional[int] = ..., from_priority: _Optional[_Union[TicketPriority, str]] = ..., to_priority: _Optional[_Union[TicketPriority, str]] = ..., from_agent_id: _Optional[str] = ..., to_agent_id: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AgentRef(_message.Message):
    __slots__ = ("id", "display_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class ChatSession(_message.Message):
    __slots__ = ("id", "session_key", "status", "customer_id", "agent_id", "agent", "department", "ticket_id", "subject", "queue_position", "started_at", "assigned_at", "ended_at", "end_reason", "duration_seconds", "satisfaction_rating", "last_seq", "customer_last_read_seq", "agent_last_read_seq", "customer_name", "preview")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SATISFACTION_RATING_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    AGENT_LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_key: str
    status: ChatSessionStatus
    customer_id: str
    agent_id: str
    agent: AgentRef
    department: str
    ticket_id: str
    subject: str
    queue_position: int
    started_at: _timestamp_pb2.Timestamp
    assigned_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    end_reason: str
    duration_seconds: int
    satisfaction_rating: int
    last_seq: int
    customer_last_read_seq: int
    agent_last_read_seq: int
    customer_name: str
    preview: str
    def __init__(self, id: _Optional[str] = ..., session_key: _Optional[str] = ..., status: _Optional[_Union[ChatSessionStatus, str]] = ..., customer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., agent: _Optional[_Union[AgentRef, _Mapping]] = ..., department: _Optional[str] = ..., ticket_id: _Optional[str] = ..., subject: _Optional[str] = ..., queue_position: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_reason: _Optional[str] = ..., duration_seconds: _Optional[int] = ..., satisfaction_rating: _Optional[int] = ..., last_seq: _Optional[int] = ..., customer_last_read_seq: _Optional[int] = ..., agent_last_read_seq: _Optional[int] = ..., customer_name: _Optional[str] = ..., preview: _Optional[str] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("id", "session_id", "seq", "client_msg_id", "sender_type", "sender_id", "message_type", "message", "created_at", "type", "after_seq", "error_code", "error_message", "session", "attachments")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    seq: int
    client_msg_id: str
    sender_type: str
    sender_id: str
    message_type: str
    message: str
    created_at: _timestamp_pb2.Timestamp
    type: ChatFrameType
    after_seq: int
    error_code: str
    error_message: str
    session: ChatSession
    attachments: _containers.RepeatedCompositeFieldContainer[MessageAttachment]
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., seq: _Optional[int] = ..., client_msg_id: _Optional[str] = ..., sender_type: _Optional[str] = ..., sender_id: _Optional[str] = ..., message_type: _Optional[str] = ..., message: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[ChatFrameType, str]] = ..., after_seq: _Optional[int] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., session: _Optional[_Union[ChatSession, _Mapping]] = ..., attachments: _Optional[_Iterable[_Union[MessageAttachment, _Mapping]]] = ...) -> None: ...

class MessageAttachment(_message.Message):
    __slots__ = ("id", "name", "content_type", "size", "url", "thumbnail_url")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    content_type: str
    size: int
    url: str
    thumbnail_url: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., url: _Optional[str] = ..., thumbnail_url: _Optional[str] = ...) -> None: ...
