// The Licensing tab's GraphQL documents. Plain text only (no ${...}, no escapes): the server
// reads this file too, and runs these documents by their SHA-256 for every district, even when
// it runs registered documents only (docs/caching.md).

export const TAB_QUERY = `query LicensingTab($manage: Boolean!) {
  license {
    status licensedTo legalEntityName used total remaining overage display level accessLevel
    createdAt expiresAt daysUntilExpiration lastSyncedAt stale lastSyncError
    rosterStatus { countsKnown }
  }
  licenseUnavailable { reason message }
  usage {
    activeStudents inactiveStudents staff devices
    rosterStatus { state countsKnown source since reason }
  }
  alerts(placement: LICENSE_BANNER) { id kind severity message }
  licenseSettings @include(if: $manage) {
    studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax maximumThreshold
  }
}`;

export const SET_THRESHOLD = `mutation SetThreshold($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings {
      studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax maximumThreshold
    }
    errors { field code message }
  }
}`;

export const FORCE_UPDATE = `mutation ForceLicenseUpdate {
  forceLicenseUpdate {
    updated throttled retryAfterSeconds inProgress
    license {
      status licensedTo legalEntityName used total remaining overage display level accessLevel
      createdAt expiresAt daysUntilExpiration lastSyncedAt stale lastSyncError
      rosterStatus { countsKnown }
    }
    errors { field code message }
    notices { code message }
  }
}`;
