CREATE TABLE "jobs" (
   "job_id" TEXT PRIMARY KEY,
   "created" REAL,
   "updated" REAL,
   "requester" TEXT,
   "channel" TEXT,
   "prompt" TEXT,
   "options" TEXT,
   "status" TEXT,
   "stage" TEXT,
   "waiting_for" TEXT,
   "interrupt_id" TEXT,
   "approval" TEXT,
   "error" TEXT,
   "artifacts" TEXT,
   "runner_pid" INTEGER,
   "cancel_requested" INTEGER,
   "max_loop_lag_ms" REAL,
   "wall_seconds" REAL
);
CREATE INDEX "idx_jobs_created"
    ON "jobs" ("created");
CREATE INDEX "idx_jobs_requester_created"
    ON "jobs" ("requester", "created");
CREATE TABLE "stages" (
   "job_id" TEXT,
   "name" TEXT,
   "position" INTEGER,
   "status" TEXT,
   "runs" INTEGER,
   "seconds" REAL,
   "provider" TEXT,
   "error" TEXT,
   "started" REAL,
   "finished" REAL,
   PRIMARY KEY ("job_id", "name")
);
CREATE TABLE "voice_rates" (
   "voice" TEXT PRIMARY KEY,
   "words_per_minute" REAL,
   "updated" REAL
);
CREATE TABLE "seen_sources" (
   "key" TEXT PRIMARY KEY,
   "job_id" TEXT,
   "first_seen" REAL
);
CREATE TABLE "usage" (
   "job_id" TEXT,
   "stage" TEXT,
   "provider" TEXT,
   "unit" TEXT,
   "amount" INTEGER,
   PRIMARY KEY ("job_id", "stage", "provider", "unit")
);
CREATE TABLE "events" (
   "job_id" TEXT,
   "seq" INTEGER,
   "at" REAL,
   "kind" TEXT,
   "body" TEXT,
   PRIMARY KEY ("job_id", "seq")
);
