// The Licensing tab's GraphQL documents, all of them, in one place. Plain text only (no ${...},
// no escapes): the server reads this file too, and runs these documents by their SHA-256 for
// every district, even when it runs registered documents only (docs/caching.md). The fields a
// license shows are repeated on purpose in each document that reads one, for that reason.
// Modules import the documents from here; api.js sends them.

// Everything the tab shows. `license` is null while the district has none yet;
// licenseUnavailable then says why (its reason; the page words it itself).
export const TAB_QUERY = `query LicensingTab($manage: Boolean!) {
  license {
    status licensedTo legalEntityName used total remaining overage display level accessLevel
    createdAt expiresAt daysUntilExpiration lastSyncedAt stale
    rosterStatus { countsKnown }
  }
  licenseUnavailable { reason }
  usage {
    activeStudents inactiveStudents staff devices
    rosterStatus { state countsKnown source since }
  }
  alerts(placement: LICENSE_BANNER) { id kind severity message placements }
  licenseSettings @include(if: $manage) {
    studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax maximumThreshold
  }
}`;

export const SET_THRESHOLD = `mutation SetThreshold($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings {
      studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax maximumThreshold
    }
    errors { field code }
  }
}`;

export const FORCE_UPDATE = `mutation ForceLicenseUpdate {
  forceLicenseUpdate {
    updated throttled retryAfterSeconds inProgress
    license {
      status licensedTo legalEntityName used total remaining overage display level accessLevel
      createdAt expiresAt daysUntilExpiration lastSyncedAt stale
      rosterStatus { countsKnown }
    }
    errors { field code }
    notices { code }
  }
}`;

// The "Usage over time" chart (chart.js): a year of daily counts and the forecast. `license` and
// `forecast` are null while the district has no license; the history still shows.
export const USAGE_CHART = `query UsageChart($manage: Boolean!) {
  usageHistory(days: 365) { day activeStudents total }
  license { total }
  forecast {
    alreadyAtLimit limitReachedOn limitReachedEarliest limitReachedLatest
    projection(days: 180) { day low expected high }
  }
  licenseSettings @include(if: $manage) { studentsRemainingThreshold }
}`;

// Live updates over the websocket (live.js). Subscriptions are not limited by the server's
// registered-only mode; they are here so that every document the tab sends is in one file.
export const LICENSE_CHANGED = `subscription LicenseChanged {
  licenseChanged {
    status licensedTo legalEntityName used total remaining overage display level accessLevel
    createdAt expiresAt daysUntilExpiration lastSyncedAt stale
    rosterStatus { countsKnown }
  }
}`;

export const ALERTS_CHANGED = `subscription AlertsChanged {
  alertsChanged { id kind severity message placements }
}`;

// Sync status (sync-status.js, Manage Settings): the last license refresh and each roster
// source with its warnings, quarantined rows and held sync.
export const SYNC_STATUS = `query SyncStatus {
  license { lastSyncedAt lastSyncStatus stale }
  dataSources {
    name kind configured lastStatus lastAttemptAt lastSuccessAt records activeStudents
    held
    heldSync { runId heldAt activeStudentsBefore activeStudentsAfter }
    warnings { total sample { file line column reason rows sourceId } }
    quarantined { total sample { file line column reason rows sourceId } }
    rosterStatus { state since }
  }
}`;

export const CONFIRM_ROSTER_SYNC = `mutation ConfirmRosterSync($source: String!, $runId: Int) {
  confirmRosterSync(source: $source, runId: $runId) {
    status runId
    license { used total display }
    errors { field code }
  }
}`;

export const DISCARD_ROSTER_SYNC = `mutation DiscardRosterSync($source: String!, $runId: Int!) {
  discardRosterSync(source: $source, runId: $runId) {
    status runId
    license { used total display }
    errors { field code }
  }
}`;

// The count review (count-review.js, Manage Settings): groups of counted students worth a look.
export const COUNT_REVIEW = `query CountReview {
  countReview { reason students records licensesFreed examples }
  usage { activeStudents }
}`;

// The local roster's deactivated students, a page at a time: those REACTIVATE_STUDENTS takes.
export const DEACTIVATED_STUDENTS = `query DeactivatedStudents($first: Int, $after: String) {
  deactivatedStudents(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { sourceId givenName familyName grade school status }
  }
}`;

export const DEACTIVATE_STUDENTS = `mutation DeactivateStudents($ids: [String!]!) {
  deactivateStudents(ids: $ids) {
    changed
    usage { activeStudents }
    errors { field code }
    refusedIds { sourceId code source }
  }
}`;

export const REACTIVATE_STUDENTS = `mutation ReactivateStudents($ids: [String!]!) {
  reactivateStudents(ids: $ids) {
    changed
    usage { activeStudents }
    errors { field code }
    refusedIds { sourceId code source }
  }
}`;

// The audit log (audit-log.js, Manage Settings), newest first, filtered by kind and days.
export const AUDIT_LOG = `query AuditLog($first: Int, $after: String, $last: Int, $before: String, $actions: [AuditAction!], $since: Date, $until: Date) {
  auditLog(first: $first, after: $after, last: $last, before: $before, actions: $actions, since: $since, until: $until) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    nodes { id occurredAt actor action outcome oldValue newValue }
  }
}`;
