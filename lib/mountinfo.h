/* Reading /proc/.../mountinfo, which the daemon and mountctl both consult. */
#ifndef ZKFS_MOUNTINFO_H
#define ZKFS_MOUNTINFO_H

/* Undoes mountinfo's escaping of space, tab, newline and backslash as \ooo, in place. */
void mountinfo_unescape(char *s);

#endif
