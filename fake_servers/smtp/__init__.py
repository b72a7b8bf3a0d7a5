"""The SMTP submission fake: aiosmtpd on the shared loop, a sans-I/O session and policy, records.

>>> from fake_servers import FakeProvider
>>> from fake_servers.smtp import SmtpConfig
>>> with FakeProvider(smtp=SmtpConfig(max_recipients=500)) as provider:
...     provider.smtp_port, provider.smtps_port, provider.submissions()
"""

from .config import SmtpConfig, SmtpTexts
from .policy import Counters, SubmissionPolicy
from .records import Submission, SubmissionLog

__all__ = ["Counters", "SmtpConfig", "SmtpTexts", "Submission", "SubmissionLog", "SubmissionPolicy"]
