"""The client SDK: keys, request signing, frames, HTTP and NATS.

The pieces most programs need are re-exported here::

    from roomkeeper.client import Identity, RoomsClient, RoomsNats, RoomSession
"""

from .errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    ServerUnreachable,
    ServiceUnavailableError,
    UnauthorizedError,
    UnexpectedResponse,
)
from .follow import (
    DEFAULT_BACKLOG,
    Follower,
    LiveFeed,
    PollingFeed,
    SubjectFeed,
    follow_room,
    read_backlog,
)
from .frames import (
    ChatMessage,
    FrameError,
    new_room_key,
    open_frame,
    open_room_key,
    seal_frame,
    seal_room_key,
)
from .history import ReceivedMessage, RejectedFrame, VerifiedHistory, open_frames, read_history
from .http import HistoryPage, RoomInfo, RoomsClient
from .keys import Identity, Keyring, RoomKeyMissing
from .nats import DEFAULT_NATS_URL, RoomsNats, frame_msg_id
from .rooms import (
    NoLiveConnection,
    RoomSession,
    Via,
    accept_text,
    create_room_with_key,
    share_text,
)
from .signer import RequestSigner, SignatureAuth

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_NATS_URL",
    "ApiError",
    "BadRequestError",
    "ChatMessage",
    "ConflictError",
    "Follower",
    "ForbiddenError",
    "FrameError",
    "HistoryPage",
    "Identity",
    "Keyring",
    "LiveFeed",
    "NoLiveConnection",
    "NotFoundError",
    "PayloadTooLargeError",
    "PollingFeed",
    "ReceivedMessage",
    "RejectedFrame",
    "RequestSigner",
    "RoomInfo",
    "RoomKeyMissing",
    "RoomSession",
    "RoomsClient",
    "RoomsNats",
    "ServerUnreachable",
    "ServiceUnavailableError",
    "SignatureAuth",
    "SubjectFeed",
    "UnauthorizedError",
    "UnexpectedResponse",
    "VerifiedHistory",
    "Via",
    "accept_text",
    "create_room_with_key",
    "follow_room",
    "frame_msg_id",
    "new_room_key",
    "open_frame",
    "open_frames",
    "open_room_key",
    "read_backlog",
    "read_history",
    "seal_frame",
    "seal_room_key",
    "share_text",
]
