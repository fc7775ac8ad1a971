"""Small shared pieces of the OSS emulator: the error type, time formats and XML text helpers."""

import calendar
import time
from email.utils import formatdate
from urllib.parse import quote
from xml.sax.saxutils import escape


class OssError(Exception):
    """An OSS error answer: HTTP status, ``Code``, ``Message`` and extra ``<Error>`` elements.

    ``extra`` is a list of ``(element, text)`` pairs placed after ``RequestId``/``HostId``
    (for example ``OSSAccessKeyId``, ``StringToSign`` or ``Key``). ``ec`` is the service's
    ``EC`` error number when it is known. ``headers`` are added to the response.
    """

    def __init__(self, status, code, message, extra=None, ec=None, headers=None):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.extra = list(extra or [])
        self.ec = ec
        self.headers = dict(headers or {})


# Errors used in several places. Messages are the ones the service sends.
def no_such_bucket(bucket):
    return OssError(404, "NoSuchBucket", "The specified bucket does not exist.", [("BucketName", bucket)], ec="0015-00000101")


def no_such_key(key):
    return OssError(404, "NoSuchKey", "The specified key does not exist.", [("Key", key)], ec="0026-00000001")


def no_such_upload(upload_id):
    return OssError(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                    "or the upload may have been aborted or completed.", [("UploadId", upload_id)])


def invalid_argument(message, name=None, value=None):
    extra = []
    if name is not None:
        extra = [("ArgumentName", name), ("ArgumentValue", "" if value is None else str(value))]
    return OssError(400, "InvalidArgument", message, extra)


def malformed_xml(message="The XML you provided was not well-formed or did not validate against our published schema.", ec=None):
    return OssError(400, "MalformedXML", message, ec=ec)


def http_date(ts=None):
    """RFC 1123 GMT date with a two-digit day (``Wed, 05 Dec 2025 11:10:29 GMT``)."""
    return formatdate(ts if ts is not None else time.time(), usegmt=True)


def iso8601(ts):
    """The XML timestamp form oss2 insists on: ``YYYY-MM-DDTHH:MM:SS.000Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def parse_http_date(value):
    """Epoch seconds from an RFC 1123 date, or ``None`` when it does not parse."""
    for fmt in ("%a, %d %b %Y %H:%M:%S GMT", "%a, %d %b %Y %H:%M:%S %Z"):
        try:
            return calendar.timegm(time.strptime(value.strip(), fmt))
        except (ValueError, AttributeError):
            continue
    return None


def x(text):
    """Escape text for XML element content."""
    return escape("" if text is None else str(text))


def url_encode_key(text, url_encoding):
    """Keys, prefixes and markers in listings: percent-encoded (``/`` too) with ``encoding-type=url``."""
    if text is None:
        return ""
    return quote(text, safe="") if url_encoding else text


def error_xml(err, request_id, host_id):
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n',
             "  <Code>%s</Code>\n" % x(err.code),
             "  <Message>%s</Message>\n" % x(err.message),
             "  <RequestId>%s</RequestId>\n" % x(request_id),
             "  <HostId>%s</HostId>\n" % x(host_id)]
    for name, value in err.extra:
        parts.append("  <%s>%s</%s>\n" % (name, x(value), name))
    if err.ec:
        parts.append("  <EC>%s</EC>\n" % x(err.ec))
        parts.append("  <RecommendDoc>https://api.aliyun.com/troubleshoot?q=%s</RecommendDoc>\n" % x(err.ec))
    parts.append("</Error>\n")
    return "".join(parts).encode("utf-8")
