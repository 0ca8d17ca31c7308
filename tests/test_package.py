import huntgroup


def test_version() -> None:
    assert huntgroup.__version__.count(".") == 2
