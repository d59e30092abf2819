"""HS013: a scoped_session whose remove() is never called at the end of a request.

The session lives in the scoped_session's thread-local registry, so the path goes through a
threading.local as well; HS013 overrides HS010 there.
"""

from _harness import measure
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker


class Base(DeclarativeBase):
    pass


class PageView(Base):
    __tablename__ = "page_views"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(200))


engine = create_engine("sqlite://")
Base.metadata.create_all(engine)
DBSession = scoped_session(sessionmaker(engine))


def track(request_id: int) -> None:
    DBSession.add(PageView(id=request_id, path=f"/products/{request_id}"))
    # Missing: DBSession.remove() in the request teardown.


measure(track)
