/* zkfs-fused's FUSE low-level operations, by family; main.c puts them in fuse_lowlevel_ops. */
#ifndef ZKFS_FUSED_OPS_H
#define ZKFS_FUSED_OPS_H

#include "fs.h"

/* ops_entry.c: names, attributes, directories, statfs. */
void op_init(void *userdata, struct fuse_conn_info *conn);
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_statfs(fuse_req_t req, fuse_ino_t ino);

/* ops_dir.c: making, removing and renaming names. */
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);

/* ops_file.c: open files, buffered writes committed at flush. */
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* The size of what a writable handle holds (fstat while writing): 1 if fh is one. */
int file_size(uint64_t fh, off_t *size);
/* setattr's size change on an open handle: 0 or a ZE_* / negative errno code. */
int file_truncate(struct fs *fs, uint64_t fh, off_t size);

/* xattr.c: user.zk.* */
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ops_dir.c: the znode creation every maker shares (create, mknod, mkdir, commits).
 * Creates path (or, sequential, path + suffix) with data, as a child of a directory with
 * the given policy; installs the result. *made (malloc'd) receives the path created and *st
 * its Stat. 0 or a ZE_* code. */
int dir_create_node(struct fs *fs, const char *path, const uint8_t *data, size_t len, uint32_t kind,
                    uint32_t parent_policy, char **made, struct zc_stat *st);
/* The policy of the directory at path (cached, else fetched); 0 on error. */
uint32_t dir_policy(struct fs *fs, const char *path, int *err);

#endif
