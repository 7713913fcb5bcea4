/*
 * The daemon's background WAL checkpointer.  With wal_autocheckpoint, the
 * commit that crosses the threshold copies the WAL into the database and
 * fsyncs it on the committing thread: at a forecast row per message that
 * is a stall of tens to hundreds of ms every few seconds in the daemon's
 * loop, and its latency tail.  In daemon mode the writer never checkpoints
 * (wal_autocheckpoint = 0); a thread with a connection of its own runs a
 * PASSIVE checkpoint every CKPT_MS (it never waits for the writer or
 * readers, and the writer is never blocked by it), and the writer starts
 * the WAL over at its next commit once it has all been copied.  The last
 * close checkpoints what is left.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <time.h>

#define CKPT_MS 100

static void *ckpt_main(void *arg)
{
	struct store *s = arg;
	pthread_mutex_lock(&s->ckpt_mu);
	while (!s->ckpt_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CKPT_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts);
		if (s->ckpt_stop)
			break;
		pthread_mutex_unlock(&s->ckpt_mu);
		/* SQLITE_BUSY (another checkpoint runs) and I/O errors are
		 * left to the next round and to the writer's own errors */
		(void)sqlite3_wal_checkpoint_v2(
		    s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&s->ckpt_mu);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return NULL;
}

int store_ckpt_start(struct store *s, char *errbuf, size_t errbuf_size)
{
	int rc =
	    sqlite3_open_v2(s->path, &s->ckpt_db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int r =
		    store_set_err(errbuf, errbuf_size, -EIO,
				  "%s: opening the checkpoint connection: %s",
				  s->path, sqlite3_errstr(rc));
		sqlite3_close_v2(s->ckpt_db);
		s->ckpt_db = NULL;
		return r;
	}
	/* a fresh connection is not in WAL mode until it has read the file
	 * (sqlite3_wal_checkpoint_v2 would do nothing) */
	rc = sqlite3_exec(s->ckpt_db, "SELECT count(*) FROM sqlite_schema",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 0", NULL,
				  NULL, NULL);
	if (rc != SQLITE_OK || pthread_mutex_init(&s->ckpt_mu, NULL) != 0) {
		sqlite3_close_v2(s->ckpt_db);
		s->ckpt_db = NULL;
		return store_set_err(errbuf, errbuf_size, -EIO,
				     "%s: setting up background checkpoints",
				     s->path);
	}
	if (pthread_cond_init(&s->ckpt_cv, NULL) != 0 ||
	    pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
		pthread_mutex_destroy(&s->ckpt_mu);
		sqlite3_close_v2(s->ckpt_db);
		s->ckpt_db = NULL;
		/* the writer checkpoints by itself again */
		sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 8192", NULL,
			     NULL, NULL);
		return store_set_err(errbuf, errbuf_size, -EAGAIN,
				     "%s: starting the checkpoint thread",
				     s->path);
	}
	s->ckpt_running = true;
	return 0;
}

void store_ckpt_stop(struct store *s)
{
	if (!s->ckpt_running)
		return;
	pthread_mutex_lock(&s->ckpt_mu);
	s->ckpt_stop = true;
	pthread_cond_signal(&s->ckpt_cv);
	pthread_mutex_unlock(&s->ckpt_mu);
	pthread_join(s->ckpt_thread, NULL);
	pthread_cond_destroy(&s->ckpt_cv);
	pthread_mutex_destroy(&s->ckpt_mu);
	sqlite3_close_v2(s->ckpt_db);
	s->ckpt_db = NULL;
	s->ckpt_running = false;
}
