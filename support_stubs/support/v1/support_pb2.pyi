import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from support_stubs.support.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Granularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANULARITY_UNSPECIFIED: _ClassVar[Granularity]
    GRANULARITY_HOUR: _ClassVar[Granularity]
    GRANULARITY_DAY: _ClassVar[Granularity]
    GRANULARITY_WEEK: _ClassVar[Granularity]

class AnalyticsReport(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANALYTICS_REPORT_UNSPECIFIED: _ClassVar[AnalyticsReport]
    ANALYTICS_REPORT_TICKETS: _ClassVar[AnalyticsReport]
    ANALYTICS_REPORT_CHAT: _ClassVar[AnalyticsReport]
    ANALYTICS_REPORT_RESPONSE_TIME: _ClassVar[AnalyticsReport]
    ANALYTICS_REPORT_SATISFACTION: _ClassVar[AnalyticsReport]
GRANULARITY_UNSPECIFIED: Granularity
GRANULARITY_HOUR: Granularity
GRANULARITY_DAY: Granularity
GRANULARITY_WEEK: Granularity
ANALYTICS_REPORT_UNSPECIFIED: AnalyticsReport
ANALYTICS_REPORT_TICKETS: AnalyticsReport
ANALYTICS_REPORT_CHAT: AnalyticsReport
ANALYTICS_REPORT_RESPONSE_TIME: AnalyticsReport
ANALYTICS_REPORT_SATISFACTION: AnalyticsReport

class CreateTicketRequest(_message.Message):
    __slots__ = ("subject", "description", "category", "subcategory", "priority", "channel", "tags", "metadata", "customer_id", "customer_email", "customer_name", "agent_id")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    subject: str
    description: str
    category: str
    subcategory: str
    priority: _common_pb2.TicketPriority
    channel: _common_pb2.TicketChannel
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    customer_id: str
    customer_email: str
    customer_name: str
    agent_id: str
    def __init__(self, subject: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., subcategory: _Optional[str] = ..., priority: _Optional[_Union[_common_pb2.TicketPriority, str]] = ..., channel: _Optional[_Union[_common_pb2.TicketChannel, str]] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., customer_id: _Optional[str] = ..., customer_email: _Optional[str] = ..., customer_name: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class TicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _common_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UpdateTicketRequest(_message.Message):
    __slots__ = ("id", "subject", "description", "category", "subcategory", "priority", "status", "tags", "metadata", "customer_email", "customer_name", "agent_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    subject: str
    description: str
    category: str
    subcategory: str
    priority: _common_pb2.TicketPriority
    status: _common_pb2.TicketStatus
    tags: _common_pb2.StringList
    metadata: _struct_pb2.Struct
    customer_email: str
    customer_name: str
    agent_id: str
    def __init__(self, id: _Optional[str] = ..., subject: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., subcategory: _Optional[str] = ..., priority: _Optional[_Union[_common_pb2.TicketPriority, str]] = ..., status: _Optional[_Union[_common_pb2.TicketStatus, str]] = ..., tags: _Optional[_Union[_common_pb2.StringList, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., customer_email: _Optional[str] = ..., customer_name: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class DeleteTicketRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteTicketResponse(_message.Message):
    __slots__ = ("id", "deleted")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    id: str
    deleted: bool
    def __init__(self, id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("limit", "offset", "sort", "status", "priority", "category", "agent_id", "customer_id", "q", "created_after", "created_before")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    sort: str
    status: _containers.RepeatedScalarFieldContainer[_common_pb2.TicketStatus]
    priority: _containers.RepeatedScalarFieldContainer[_common_pb2.TicketPriority]
    category: str
    agent_id: str
    customer_id: str
    q: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ..., sort: _Optional[str] = ..., status: _Optional[_Iterable[_Union[_common_pb2.TicketStatus, str]]] = ..., priority: _Optional[_Iterable[_Union[_common_pb2.TicketPriority, str]]] = ..., category: _Optional[str] = ..., agent_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., q: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTicketsResponse(_message.Message):
    __slots__ = ("items", "total", "limit", "offset")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.Ticket]
    total: int
    limit: int
    offset: int
    def __init__(self, items: _Optional[_Iterable[_Union[_common_pb2.Ticket, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class EscalateTicketRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EscalateTicketResponse(_message.Message):
    __slots__ = ("ticket", "escalation")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    ticket: _common_pb2.Ticket
    escalation: _common_pb2.Escalation
    def __init__(self, ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ..., escalation: _Optional[_Union[_common_pb2.Escalation, _Mapping]] = ...) -> None: ...

class CreateChatSessionRequest(_message.Message):
    __slots__ = ("customer_id", "department", "subject", "message", "client_msg_id", "metadata")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    department: str
    subject: str
    message: str
    client_msg_id: str
    metadata: _struct_pb2.Struct
    def __init__(self, customer_id: _Optional[str] = ..., department: _Optional[str] = ..., subject: _Optional[str] = ..., message: _Optional[str] = ..., client_msg_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ChatSessionResponse(_message.Message):
    __slots__ = ("session", "message")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    session: _common_pb2.ChatSession
    message: _common_pb2.ChatMessage
    def __init__(self, session: _Optional[_Union[_common_pb2.ChatSession, _Mapping]] = ..., message: _Optional[_Union[_common_pb2.ChatMessage, _Mapping]] = ...) -> None: ...

class GetChatSessionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("session_id", "client_msg_id", "message", "message_type")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_msg_id: str
    message: str
    message_type: str
    def __init__(self, session_id: _Optional[str] = ..., client_msg_id: _Optional[str] = ..., message: _Optional[str] = ..., message_type: _Optional[str] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message", "duplicate")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    message: _common_pb2.ChatMessage
    duplicate: bool
    def __init__(self, message: _Optional[_Union[_common_pb2.ChatMessage, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class GetMessagesRequest(_message.Message):
    __slots__ = ("session_id", "after_seq", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after_seq: int
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetMessagesResponse(_message.Message):
    __slots__ = ("items", "session", "total", "limit", "offset")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    session: _common_pb2.ChatSession
    total: int
    limit: int
    offset: int
    def __init__(self, items: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., session: _Optional[_Union[_common_pb2.ChatSession, _Mapping]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class Article(_message.Message):
    __slots__ = ("id", "title", "content", "category", "tags", "author_id", "is_published", "view_count", "helpful_count", "not_helpful_count", "created_at", "updated_at", "published_at", "content_format")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    VIEW_COUNT_FIELD_NUMBER: _ClassVar[int]
    HELPFUL_COUNT_FIELD_NUMBER: _ClassVar[int]
    NOT_HELPFUL_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    content: str
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    author_id: str
    is_published: bool
    view_count: int
    helpful_count: int
    not_helpful_count: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    published_at: _timestamp_pb2.Timestamp
    content_format: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., content: _Optional[str] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., author_id: _Optional[str] = ..., is_published: _Optional[bool] = ..., view_count: _Optional[int] = ..., helpful_count: _Optional[int] = ..., not_helpful_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., content_format: _Optional[str] = ...) -> None: ...

class CreateArticleRequest(_message.Message):
    __slots__ = ("title", "content", "category", "tags", "is_published", "content_format")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    title: str
    content: str
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    is_published: bool
    content_format: str
    def __init__(self, title: _Optional[str] = ..., content: _Optional[str] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., is_published: _Optional[bool] = ..., content_format: _Optional[str] = ...) -> None: ...

class ArticleResponse(_message.Message):
    __slots__ = ("article",)
    ARTICLE_FIELD_NUMBER: _ClassVar[int]
    article: Article
    def __init__(self, article: _Optional[_Union[Article, _Mapping]] = ...) -> None: ...

class GetArticleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UpdateArticleRequest(_message.Message):
    __slots__ = ("id", "title", "content", "category", "tags", "is_published", "content_format")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    content: str
    category: str
    tags: _common_pb2.StringList
    is_published: bool
    content_format: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., content: _Optional[str] = ..., category: _Optional[str] = ..., tags: _Optional[_Union[_common_pb2.StringList, _Mapping]] = ..., is_published: _Optional[bool] = ..., content_format: _Optional[str] = ...) -> None: ...

class DeleteArticleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteArticleResponse(_message.Message):
    __slots__ = ("id", "deleted")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    id: str
    deleted: bool
    def __init__(self, id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class SearchArticlesRequest(_message.Message):
    __slots__ = ("q", "category", "tags", "limit", "offset")
    Q_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    q: str
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    offset: int
    def __init__(self, q: _Optional[str] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ArticleSearchResult(_message.Message):
    __slots__ = ("id", "title", "snippet", "score", "category", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    snippet: str
    score: float
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., snippet: _Optional[str] = ..., score: _Optional[float] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchArticlesResponse(_message.Message):
    __slots__ = ("items", "total", "limit", "offset")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ArticleSearchResult]
    total: int
    limit: int
    offset: int
    def __init__(self, items: _Optional[_Iterable[_Union[ArticleSearchResult, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("id", "ticket_id", "session_id", "customer_id", "agent_id", "rating", "comment", "category", "sentiment_score", "created_at", "updated_at", "department")
    ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_SCORE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    ticket_id: str
    session_id: str
    customer_id: str
    agent_id: str
    rating: int
    comment: str
    category: str
    sentiment_score: float
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    department: str
    def __init__(self, id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., rating: _Optional[int] = ..., comment: _Optional[str] = ..., category: _Optional[str] = ..., sentiment_score: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., department: _Optional[str] = ...) -> None: ...

class CreateFeedbackRequest(_message.Message):
    __slots__ = ("ticket_id", "session_id", "rating", "comment", "category")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    session_id: str
    rating: int
    comment: str
    category: str
    def __init__(self, ticket_id: _Optional[str] = ..., session_id: _Optional[str] = ..., rating: _Optional[int] = ..., comment: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("feedback",)
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    feedback: Feedback
    def __init__(self, feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...

class GetFeedbackRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DurationStats(_message.Message):
    __slots__ = ("avg", "p50", "p90", "count")
    AVG_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P90_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    avg: float
    p50: float
    p90: float
    count: int
    def __init__(self, avg: _Optional[float] = ..., p50: _Optional[float] = ..., p90: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class GetFeedbackAnalyticsRequest(_message.Message):
    __slots__ = ("to", "granularity", "tz", "department", "agent_id", "category")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    granularity: Granularity
    tz: str
    department: str
    agent_id: str
    category: str
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., tz: _Optional[str] = ..., department: _Optional[str] = ..., agent_id: _Optional[str] = ..., category: _Optional[str] = ..., **kwargs) -> None: ...

class AgentSatisfaction(_message.Message):
    __slots__ = ("agent_id", "count", "average_rating", "csat")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    CSAT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    count: int
    average_rating: float
    csat: float
    def __init__(self, agent_id: _Optional[str] = ..., count: _Optional[int] = ..., average_rating: _Optional[float] = ..., csat: _Optional[float] = ...) -> None: ...

class CategorySatisfaction(_message.Message):
    __slots__ = ("count", "average_rating")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    count: int
    average_rating: float
    def __init__(self, count: _Optional[int] = ..., average_rating: _Optional[float] = ...) -> None: ...

class SatisfactionBucket(_message.Message):
    __slots__ = ("bucket", "count", "average_rating")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    bucket: _timestamp_pb2.Timestamp
    count: int
    average_rating: float
    def __init__(self, bucket: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ..., average_rating: _Optional[float] = ...) -> None: ...

class FeedbackAnalyticsResponse(_message.Message):
    __slots__ = ("to", "granularity", "tz", "department", "agent_id", "category", "count", "average_rating", "csat", "distribution", "average_sentiment", "by_agent", "by_category", "series")
    class DistributionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CategorySatisfaction
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CategorySatisfaction, _Mapping]] = ...) -> None: ...
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    CSAT_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_SENTIMENT_FIELD_NUMBER: _ClassVar[int]
    BY_AGENT_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    granularity: Granularity
    tz: str
    department: str
    agent_id: str
    category: str
    count: int
    average_rating: float
    csat: float
    distribution: _containers.ScalarMap[str, int]
    average_sentiment: float
    by_agent: _containers.RepeatedCompositeFieldContainer[AgentSatisfaction]
    by_category: _containers.MessageMap[str, CategorySatisfaction]
    series: _containers.RepeatedCompositeFieldContainer[SatisfactionBucket]
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., tz: _Optional[str] = ..., department: _Optional[str] = ..., agent_id: _Optional[str] = ..., category: _Optional[str] = ..., count: _Optional[int] = ..., average_rating: _Optional[float] = ..., csat: _Optional[float] = ..., distribution: _Optional[_Mapping[str, int]] = ..., average_sentiment: _Optional[float] = ..., by_agent: _Optional[_Iterable[_Union[AgentSatisfaction, _Mapping]]] = ..., by_category: _Optional[_Mapping[str, CategorySatisfaction]] = ..., series: _Optional[_Iterable[_Union[SatisfactionBucket, _Mapping]]] = ..., **kwargs) -> None: ...

class GetSupportAnalyticsRequest(_message.Message):
    __slots__ = ("report", "to", "granularity", "tz", "department", "agent_id")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    report: AnalyticsReport
    to: _timestamp_pb2.Timestamp
    granularity: Granularity
    tz: str
    department: str
    agent_id: str
    def __init__(self, report: _Optional[_Union[AnalyticsReport, str]] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., tz: _Optional[str] = ..., department: _Optional[str] = ..., agent_id: _Optional[str] = ..., **kwargs) -> None: ...

class TicketTotals(_message.Message):
    __slots__ = ("created", "resolved", "reopened", "escalated", "backlog", "sla_breached")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    REOPENED_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    created: int
    resolved: int
    reopened: int
    escalated: int
    backlog: int
    sla_breached: int
    def __init__(self, created: _Optional[int] = ..., resolved: _Optional[int] = ..., reopened: _Optional[int] = ..., escalated: _Optional[int] = ..., backlog: _Optional[int] = ..., sla_breached: _Optional[int] = ...) -> None: ...

class TicketBucket(_message.Message):
    __slots__ = ("bucket", "created", "resolved")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    bucket: _timestamp_pb2.Timestamp
    created: int
    resolved: int
    def __init__(self, bucket: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created: _Optional[int] = ..., resolved: _Optional[int] = ...) -> None: ...

class TicketAnalytics(_message.Message):
    __slots__ = ("totals", "by_status", "by_priority", "by_category", "series")
    class ByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByPriorityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    BY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    totals: TicketTotals
    by_status: _containers.ScalarMap[str, int]
    by_priority: _containers.ScalarMap[str, int]
    by_category: _containers.ScalarMap[str, int]
    series: _containers.RepeatedCompositeFieldContainer[TicketBucket]
    def __init__(self, totals: _Optional[_Union[TicketTotals, _Mapping]] = ..., by_status: _Optional[_Mapping[str, int]] = ..., by_priority: _Optional[_Mapping[str, int]] = ..., by_category: _Optional[_Mapping[str, int]] = ..., series: _Optional[_Iterable[_Union[TicketBucket, _Mapping]]] = ...) -> None: ...

class ChatTotals(_message.Message):
    __slots__ = ("sessions", "answered", "timed_out", "abandoned")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_FIELD_NUMBER: _ClassVar[int]
    sessions: int
    answered: int
    timed_out: int
    abandoned: int
    def __init__(self, sessions: _Optional[int] = ..., answered: _Optional[int] = ..., timed_out: _Optional[int] = ..., abandoned: _Optional[int] = ...) -> None: ...

class ChatBucket(_message.Message):
    __slots__ = ("bucket", "sessions", "answered")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    bucket: _timestamp_pb2.Timestamp
    sessions: int
    answered: int
    def __init__(self, bucket: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sessions: _Optional[int] = ..., answered: _Optional[int] = ...) -> None: ...

class ChatAnalytics(_message.Message):
    __slots__ = ("totals", "wait_seconds", "duration_seconds", "peak_concurrent", "series")
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEAK_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    totals: ChatTotals
    wait_seconds: DurationStats
    duration_seconds: DurationStats
    peak_concurrent: int
    series: _containers.RepeatedCompositeFieldContainer[ChatBucket]
    def __init__(self, totals: _Optional[_Union[ChatTotals, _Mapping]] = ..., wait_seconds: _Optional[_Union[DurationStats, _Mapping]] = ..., duration_seconds: _Optional[_Union[DurationStats, _Mapping]] = ..., peak_concurrent: _Optional[int] = ..., series: _Optional[_Iterable[_Union[ChatBucket, _Mapping]]] = ...) -> None: ...

class TicketResponseTimes(_message.Message):
    __slots__ = ("first_response_seconds", "resolution_seconds")
    FIRST_RESPONSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    first_response_seconds: DurationStats
    resolution_seconds: DurationStats
    def __init__(self, first_response_seconds: _Optional[_Union[DurationStats, _Mapping]] = ..., resolution_seconds: _Optional[_Union[DurationStats, _Mapping]] = ...) -> None: ...

class ChatResponseTimes(_message.Message):
    __slots__ = ("first_response_seconds",)
    FIRST_RESPONSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    first_response_seconds: DurationStats
    def __init__(self, first_response_seconds: _Optional[_Union[DurationStats, _Mapping]] = ...) -> None: ...

class ResponseTimeBucket(_message.Message):
    __slots__ = ("bucket", "ticket_first_response_seconds", "ticket_resolution_seconds", "chat_first_response_seconds")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIRST_RESPONSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TICKET_RESOLUTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIRST_RESPONSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    bucket: _timestamp_pb2.Timestamp
    ticket_first_response_seconds: float
    ticket_resolution_seconds: float
    chat_first_response_seconds: float
    def __init__(self, bucket: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ticket_first_response_seconds: _Optional[float] = ..., ticket_resolution_seconds: _Optional[float] = ..., chat_first_response_seconds: _Optional[float] = ...) -> None: ...

class ResponseTimeAnalytics(_message.Message):
    __slots__ = ("tickets", "chats", "series")
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    CHATS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    tickets: TicketResponseTimes
    chats: ChatResponseTimes
    series: _containers.RepeatedCompositeFieldContainer[ResponseTimeBucket]
    def __init__(self, tickets: _Optional[_Union[TicketResponseTimes, _Mapping]] = ..., chats: _Optional[_Union[ChatResponseTimes, _Mapping]] = ..., series: _Optional[_Iterable[_Union[ResponseTimeBucket, _Mapping]]] = ...) -> None: ...

class SatisfactionAnalytics(_message.Message):
    __slots__ = ("count", "average_rating", "csat", "distribution", "average_sentiment", "by_agent", "by_category", "series")
    class DistributionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CategorySatisfaction
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CategorySatisfaction, _Mapping]] = ...) -> None: ...
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    CSAT_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_SENTIMENT_FIELD_NUMBER: _ClassVar[int]
    BY_AGENT_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    count: int
    average_rating: float
    csat: float
    distribution: _containers.ScalarMap[str, int]
    average_sentiment: float
    by_agent: _containers.RepeatedCompositeFieldContainer[AgentSatisfaction]
    by_category: _containers.MessageMap[str, CategorySatisfaction]
    series: _containers.RepeatedCompositeFieldContainer[SatisfactionBucket]
    def __init__(self, count: _Optional[int] = ..., average_rating: _Optional[float] = ..., csat: _Optional[float] = ..., distribution: _Optional[_Mapping[str, int]] = ..., average_sentiment: _Optional[float] = ..., by_agent: _Optional[_Iterable[_Union[AgentSatisfaction, _Mapping]]] = ..., by_category: _Optional[_Mapping[str, CategorySatisfaction]] = ..., series: _Optional[_Iterable[_Union[SatisfactionBucket, _Mapping]]] = ...) -> None: ...

class SupportAnalyticsResponse(_message.Message):
    __slots__ = ("to", "granularity", "tz", "department", "agent_id", "tickets", "chat", "response_time", "satisfaction")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_FIELD_NUMBER: _ClassVar[int]
    SATISFACTION_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    granularity: Granularity
    tz: str
    department: str
    agent_id: str
    tickets: TicketAnalytics
    chat: ChatAnalytics
    response_time: ResponseTimeAnalytics
    satisfaction: SatisfactionAnalytics
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., tz: _Optional[str] = ..., department: _Optional[str] = ..., agent_id: _Optional[str] = ..., tickets: _Optional[_Union[TicketAnalytics, _Mapping]] = ..., chat: _Optional[_Union[ChatAnalytics, _Mapping]] = ..., response_time: _Optional[_Union[ResponseTimeAnalytics, _Mapping]] = ..., satisfaction: _Optional[_Union[SatisfactionAnalytics, _Mapping]] = ..., **kwargs) -> None: ...
