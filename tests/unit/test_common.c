/* Unit tests for lib/: error table, path validation, frame reader. */
#include "digest.h"
#include "err.h"
#include "frame.h"
#include "path.h"
#include "test.h"

#include <errno.h>
#include <string.h>

static int valid(const char *p)
{
    return path_validate(p, strlen(p), 0) == 0;
}

static void test_paths(void)
{
    CHECK(valid("/"));
    CHECK(valid("/a"));
    CHECK(valid("/a/b-c_d.e"));
    CHECK(valid("/\xc3\xa9t\xc3\xa9")); /* UTF-8 "été" */
    CHECK(!valid(""));
    CHECK(!valid("a"));
    CHECK(!valid("/a/"));
    CHECK(!valid("//a"));
    CHECK(!valid("/a//b"));
    CHECK(!valid("/."));
    CHECK(!valid("/a/.."));
    CHECK(valid("/a/..b"));
    CHECK(!valid("/a\x01"));
    CHECK(!valid("/a\x7f"));
    CHECK(!valid("/\xc2\x80"));  /* U+0080 */
    CHECK(!valid("/\xef\xbf\xb0")); /* U+FFF0 */
    CHECK(!valid("/\xff"));      /* not UTF-8 */
    CHECK(!valid("/\xc0\xaf"));  /* overlong */
    CHECK(path_validate("/a\0b", 4, 0) != 0);
    CHECK(path_validate("/q/", 3, 1) == 0);
    CHECK(path_validate("/q/x-", 5, 1) == 0);
    CHECK(path_validate("/q//", 4, 1) != 0);
    CHECK_EQ(path_parent_len("/a/b"), 2);
    CHECK_EQ(path_parent_len("/a"), 1);
    CHECK_EQ(path_parent_len("/"), 0);
    CHECK(strcmp(path_name("/a/bc"), "bc") == 0);
}

static void test_errors(void)
{
    CHECK_EQ(err_to_zk(ZE_NONODE), -101);
    CHECK_EQ(err_from_zk(-110), ZE_NODEEXISTS);
    CHECK_EQ(err_to_errno(ZE_NONODE), ENOENT);
    CHECK_EQ(err_to_errno(ZE_NOTEMPTY), ENOTEMPTY);
    CHECK_EQ(err_to_errno(ZE_CONNECTIONLOSS), EIO);
    CHECK_EQ(err_to_errno(-EFBIG), EFBIG);
    CHECK(strcmp(err_name(ZE_BADVERSION), "BADVERSION") == 0);
    CHECK_EQ(err_to_zk(-ENOMEM), -1);
    CHECK_EQ(err_from_zk(-9999), ZE_SYSTEMERROR);
}

static void test_frames(void)
{
    struct frame_reader r;
    frame_reader_init(&r, 16);
    const uint8_t *p;
    size_t n;
    uint8_t in[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 1, 'z', 0, 0};
    /* byte by byte: frames come out whole and in order */
    int got = 0;
    for (size_t i = 0; i < sizeof(in); i++) {
        CHECK_EQ(frame_reader_feed(&r, in + i, 1), 0);
        while (frame_reader_next(&r, &p, &n) == 1) {
            if (got == 0)
                CHECK(n == 3 && memcmp(p, "abc", 3) == 0);
            else
                CHECK(n == 1 && p[0] == 'z');
            got++;
        }
    }
    CHECK_EQ(got, 2);
    frame_reader_close(&r);
    frame_reader_init(&r, 16);
    uint8_t big[] = {0, 0, 0x10, 0};
    CHECK_EQ(frame_reader_feed(&r, big, 4), 0);
    CHECK_EQ(frame_reader_next(&r, &p, &n), -EMSGSIZE);
    frame_reader_close(&r);
}

static void test_digest(void)
{
    uint8_t sum[20];
    digest_sha1((const uint8_t *)"abc", 3, sum);
    char *b = digest_base64(sum, 20);
    /* FIPS 180 example: a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d */
    CHECK(strcmp(b, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=") == 0);
    free(b);
    /* 56 bytes: the padding spills into a second block */
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_sha1((const uint8_t *)m, strlen(m), sum);
    b = digest_base64(sum, 20);
    CHECK(strcmp(b, "hJg+RBw70m66rkqh+VEp5eVGcPE=") == 0);
    free(b);
    /* ZooKeeper's documented example: super:test */
    char *id = digest_auth_id("super:test", 10);
    CHECK(strcmp(id, "super:D/InIHSb7yEEbrWz8b9l71RjZJU=") == 0);
    free(id);
    CHECK(digest_auth_id("nocolon", 7) == NULL);
}

int main(void)
{
    RUN(test_digest);
    RUN(test_paths);
    RUN(test_errors);
    RUN(test_frames);
    return TEST_EXIT();
}
