"""One line of English per schedule."""

from __future__ import annotations

import pytest

from jobmanager_nb.schedules import describe_schedule
from jobmanager_nb.schedules.describe import join_words


@pytest.mark.parametrize(
    ("at", "text"),
    [
        # cron, six fields
        ("0 */5 * * * *", "every 5 minutes, at second 0"),
        ("0 1/5 * * * *", "at second 0 of minutes 1, 6, 11, … (every 5 minutes from minute 1)"),
        ("* * * * * *", "every second"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("1 * * * * *", "every minute, at second 1"),
        ("0 0 13-23 * * *", "every hour at minute 0, second 0, during hours 13-23"),
        ("0 0 0 13 * 5", "at 00:00 on the 13th day of the month, only on Fridays"),
        # cron, five fields
        ("*/5 * * * *", "every 5 minutes"),
        ("0 9 * * 1-5", "at 09:00 on weekdays (Monday to Friday)"),
        ("0 9,17 * * *", "every day at 09:00 and 17:00"),
        ("30 9-17 * * *", "every hour at minute 30, during hours 9-17"),
        ("0 0 13 * 5", "at 00:00 on the 13th day of the month or on Fridays"),
        ("0 0 1 1,7 *", "at 00:00 on the 1st day of the month in January and July"),
        ("@hourly", "every hour at minute 0"),
        # text
        ("every 5 minutes", "every 5 minutes"),
        ("every 40 minutes", "at minutes 0 and 40"),
        ("every 2 hours", "every 2 hours at minute 0"),
        ("every weekday", "at 00:00 on weekdays (Monday to Friday)"),
        ("every weekend", "at 00:00 on weekends"),
        ("at 10:15 am", "every day at 10:15"),
        ("at 5:00 pm every weekday", "at 17:00 on weekdays (Monday to Friday)"),
        ("on mon,wed,fri", "at 00:00 on Mondays, Wednesdays and Fridays"),
        ("on mon through thu", "at 00:00 on Monday to Thursday"),
        ("on the last day of the month at 23:00", "at 23:00 on the last day of the month"),
        ("on the 1st and 15th day of the month", "at 00:00 on days 1 and 15 of the month"),
        ("of jan,feb", "at 00:00 on the first day of January and February"),
        ("after 10:00 before 12:00", "every second, from 10:00 until 12:00"),
        ("every 5 minutes after 10:00 before 12:00", "every 5 minutes, from 10:00 until 12:00"),
        ("every 5 minutes except at 10:00", "every 5 minutes, except at 10:00"),
        ("every hour except on monday", "every hour at minute 0, except on Mondays"),
        ("at 11:30 am also at 4:00 pm", "every day at 11:30; also every day at 16:00"),
        ("at 10:15:30", "every day at 10:15:30"),
        ("at 09:00 in 2027", "at 09:00 in 2027"),
    ],
)
def test_descriptions(at: str, text: str) -> None:
    assert describe_schedule(at, "UTC") == text


def test_join_words() -> None:
    assert join_words([]) == ""
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"], "or") == "a, b or c"
