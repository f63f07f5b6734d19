/* mountctl status: one row per replica of the server list. */
#ifndef ZKFS_MOUNTCTL_STATUS_H
#define ZKFS_MOUNTCTL_STATUS_H

/* Prints the table (or a JSON array); returns 0, or 1 if any replica did not answer. */
int status_run(const char *servers, int json);

#endif
