"""HS013: a SQLAlchemy Session stored in a module global, each request adds a row, no commit.

Rows merely loaded are held weakly by the identity map (they would be freed), but pending
objects are held strongly by the session until it is flushed or committed.
"""

from _harness import measure
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class PageView(Base):
    __tablename__ = "page_views"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(200))


engine = create_engine("sqlite://")
Base.metadata.create_all(engine)

session = Session(engine)  # module global shared by every request


def track(request_id: int) -> None:
    session.add(PageView(id=request_id, path=f"/products/{request_id}"))


measure(track)
