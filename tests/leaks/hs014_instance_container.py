"""HS014: a process-wide client object keeps every response in a list attribute."""

from _harness import measure


class Response:
    def __init__(self, request_id: int) -> None:
        self.status = 200
        self.body = f"payload of request {request_id}".encode()


class Client:
    def __init__(self) -> None:
        self.responses: list[Response] = []

    def get(self, request_id: int) -> Response:
        response = Response(request_id)
        self.responses.append(response)
        return response


client = Client()


def handle(request_id: int) -> int:
    return client.get(request_id).status


measure(handle)
