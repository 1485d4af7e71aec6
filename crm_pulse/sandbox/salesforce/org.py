"""A fake Salesforce org (REST API v59-style) for tests, the sandbox and the demo.

It keeps sObjects in memory and serves what the connector uses, as vendor-contracts.md says:

* ``GET query`` / ``queryAll`` with a strict SOQL subset (``SELECT fields FROM object [WHERE
  ...] [ORDER BY ...] [LIMIT n]``; comparisons joined by AND or OR, parentheses, NOT; datetime,
  date, string, number, boolean and null literals). A query it does not understand gets
  Salesforce's ``MALFORMED_QUERY``, an unknown field ``INVALID_FIELD``, an unknown object
  ``INVALID_TYPE`` (HTTP 400, ``[{"message", "errorCode"}]``). Results come in pages
  (``page_size``, 2,000 like Salesforce) linked by ``nextRecordsUrl`` as an absolute path.
  ``query`` hides deleted rows; ``queryAll`` shows them with ``IsDeleted = true``.
* ``GET sobjects/{type}/describe``; ``PATCH composite/sobjects`` (sObject Collections, at most
  200 records, ``allOrNone``, per-record results in order, ``UNABLE_TO_LOCK_ROW`` on demand,
  ``ENTITY_IS_DELETED``); ``POST tooling/sobjects/CustomField``; ``POST /services/oauth2/token``
  (client-credentials flow).
* Bulk API 2.0 query jobs (``POST jobs/query``, job status, ``results`` as CSV paged with
  ``Sforce-Locator``): a job is ``UploadComplete`` when created, ``InProgress`` at the next
  status check and ``JobComplete`` (or ``Failed``, see :meth:`FakeSalesforce.fail_bulk_jobs`)
  after ``bulk_checks`` checks; its results before that answer 412 ``JOB_NOT_COMPLETE``.
  ``SELECT COUNT()`` answers ``totalSize``.
* Bearer session check (401 ``INVALID_SESSION_ID``), ``Sforce-Limit-Info: api-usage=N/M`` on every
  answer, and 403 ``REQUEST_LIMIT_EXCEEDED`` once the daily limit is used or on demand.
* Outbound Messages: :meth:`FakeSalesforce.outbound_message` builds the SOAP request for some
  records, :meth:`FakeSalesforce.send_outbound_message` posts it to a URL and says whether the
  endpoint acknowledged it.

Opportunities behave like a standard sales process: ``StageName`` "Closed Won" / "Closed Lost"
set ``IsClosed``/``IsWon``, a stage change sets ``LastStageChangeDate``; a Case with Status
"Closed" is closed (``ClosedDate``). Every change sets ``SystemModstamp`` (strictly increasing, in
milliseconds) and remembers the ``Sforce-Call-Options`` client of the write that caused it.
"""

from __future__ import annotations

from aiohttp import web

from .. import contracts
from .bulk import _Bulk
from .outbound import _Outbound
from .schema import _Schema
from .seed import _Seeding
from .session import _Session
from .writes import _Writes

__all__ = ["FakeSalesforce"]


class FakeSalesforce(_Seeding, _Outbound, _Session, _Bulk, _Writes, _Schema):
    """An in-memory Salesforce org. Python methods seed and change it; :meth:`app` serves it.

    Its state and changes are in :mod:`.state` (seeding in :mod:`.seed`); each API family serves
    from its own module (:mod:`.query`, :mod:`.bulk`, :mod:`.writes`, :mod:`.schema`) behind the
    gate of :mod:`.session`; :mod:`.outbound` builds and sends Outbound Messages."""

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[contracts.middleware("salesforce"), self._middleware],
            client_max_size=8 * 1024 * 1024,
        )
        r = app.router
        base = "/services/data/v{version:[0-9]+\\.0}"
        r.add_post("/services/oauth2/token", self._token)
        r.add_get(base + "/query", self._query)
        r.add_get(base + "/query/", self._query)
        r.add_get(base + "/queryAll", self._query)
        r.add_get(base + "/queryAll/", self._query)
        r.add_get(base + "/query/{locator}", self._more)
        r.add_get(base + "/queryAll/{locator}", self._more)
        r.add_post(base + "/jobs/query", self._bulk_create)
        r.add_get(base + "/jobs/query/{job}", self._bulk_job)
        r.add_get(base + "/jobs/query/{job}/results", self._bulk_results)
        r.add_get(base + "/sobjects/{sobject}/describe", self._describe)
        r.add_get(base + "/chatter/users/me", self._me)
        r.add_get(base + "/sobjects/{sobject}/describe/", self._describe)
        r.add_patch(base + "/composite/sobjects", self._collections)
        r.add_post(base + "/sobjects/{sobject}", self._create_record)
        r.add_post(base + "/sobjects/{sobject}/", self._create_record)
        r.add_post(base + "/tooling/sobjects/CustomField", self._custom_field)
        r.add_post(base + "/tooling/sobjects/CustomField/", self._custom_field)
        return app
