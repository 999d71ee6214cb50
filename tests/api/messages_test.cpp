// Every message survives its own JSON: what one side encodes, the other decodes to the same
// value (the server and every client use these codecs and nothing else).
#include <gtest/gtest.h>

#include <cmath>

#include "trainvisor/fleet/api/artifacts.hpp"
#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/api/manifest.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"

namespace tv::fleet::api {
namespace {

using nlohmann::json;

// Through text, as on the wire.
json wire(const json& j) {
  return json::parse(j.dump());
}

JobSpec sample_spec() {
  JobSpec s;
  s.id = std::string(64, 'a');
  s.name = "cnn-a";
  s.model = "cnn";
  s.mode = "train";
  s.hyper = {{"training/optimizer/learning_rate", 0.1},
             {"training/schedule/max_epochs", std::int64_t{3}}};
  s.model_params = {{"width", std::int64_t{8}}, {"name", std::string("x")}};
  s.data = {100, 20};
  s.policies = {{"plateau", {{"patience", std::int64_t{2}}}}};
  s.constraints.prefer_cuda = true;
  s.constraints.min_ram_gib = 1.5;
  s.constraints.allowed_hosts = {"h1"};
  s.seed = 7;
  s.max_attempts = 4;
  s.priority = -1;
  return s;
}

TEST(Messages, JobSpecRoundTrips) {
  const JobSpec s = sample_spec();
  const JobSpec back = job_spec_from_json(wire(job_spec_json(s)));
  EXPECT_EQ(job_spec_json(back), job_spec_json(s));
  EXPECT_TRUE(std::holds_alternative<double>(back.hyper.at("training/optimizer/learning_rate")));
}

TEST(Messages, ClaimAndLeaseMessagesRoundTrip) {
  HostCapability cap;
  cap.hostname = "h1";
  cap.cores = 4;
  cap.ram_gib = 7.5;
  const ClaimRequest req = wire(json(ClaimRequest{"h1", cap})).get<ClaimRequest>();
  EXPECT_EQ(req.worker, "h1");
  EXPECT_EQ(capability_json(req.capability), capability_json(cap));

  const ClaimReply none = wire(json(ClaimReply{})).get<ClaimReply>();
  EXPECT_FALSE(none.job);
  const ClaimReply some = wire(json(ClaimReply{sample_spec(), 2, "tok", 99})).get<ClaimReply>();
  ASSERT_TRUE(some.job);
  EXPECT_EQ(some.job->name, "cnn-a");
  EXPECT_EQ(some.attempt, 2);
  EXPECT_EQ(some.lease_token, "tok");
  EXPECT_EQ(some.lease_expires_ms, 99);
  EXPECT_EQ(some.generation, 0);
  EXPECT_EQ(wire(json(ClaimReply{sample_spec(), 1, "tok", 99, 3})).get<ClaimReply>().generation, 3);

  const HeartbeatReply h = wire(json(HeartbeatReply{true, 5})).get<HeartbeatReply>();
  EXPECT_TRUE(h.cancel_requested);
  EXPECT_EQ(h.lease_expires_ms, 5);
  const CompleteRequest c = wire(json(CompleteRequest{"tok", "d"})).get<CompleteRequest>();
  EXPECT_EQ(c.artifact, "d");
  EXPECT_FALSE(wire(json(CompleteRequest{"tok", {}})).get<CompleteRequest>().artifact);
  EXPECT_FALSE(c.early_stopped);
  EXPECT_TRUE(wire(json(CompleteRequest{"tok", "d", true})).get<CompleteRequest>().early_stopped);
  // An empty requeue body starts over.
  EXPECT_FALSE(json::object().get<RequeueRequest>().from_checkpoint);
  EXPECT_TRUE(wire(json(RequeueRequest{true})).get<RequeueRequest>().from_checkpoint);
  const FailRequest f =
      wire(json(FailRequest{"tok", FailureClass::kHostLost, "gone"})).get<FailRequest>();
  EXPECT_EQ(f.failure, FailureClass::kHostLost);
  EXPECT_EQ(f.reason, "gone");
}

TEST(Messages, RequestsWithAMissingOrBadFieldAreRefusedByName) {
  EXPECT_THROW(
      {
        try {
          json::object().get<LeaseRequest>();
        } catch (const std::invalid_argument& e) {
          EXPECT_STREQ(e.what(), "missing field 'lease_token' (a non-empty string)");
          throw;
        }
      },
      std::invalid_argument);
  EXPECT_THROW(json({{"worker", "w"}}).get<ClaimRequest>(), std::invalid_argument);
  EXPECT_THROW((json{{"lease_token", "t"}, {"class", "boom"}}.get<FailRequest>()),
               std::invalid_argument);
  EXPECT_THROW((json{{"writes", json::object()}}.get<ConfigWriteRequest>()), std::invalid_argument);
}

TEST(Messages, JobInfoRoundTripsWithItsConfigLag) {
  JobInfo j;
  j.spec = sample_spec();
  j.status = JobStatus::kRunning;
  j.attempt = 1;
  j.worker = "h1";
  j.claimed_ms = 10;
  j.config = {std::uint64_t{4}, std::nullopt};
  const JobInfo back = wire(json(JobList{{j}})).get<JobList>().jobs.at(0);
  EXPECT_EQ(json(back), json(j));
  EXPECT_EQ(back.status, JobStatus::kRunning);
  EXPECT_EQ(back.config.desired_revision, 4u);
  EXPECT_FALSE(back.config.applied_revision);
  EXPECT_FALSE(back.finished_ms);
  j.status = JobStatus::kStopped;
  j.stopped_by = "policy:divergence";
  j.stop_reason = "loss is NaN";
  const JobInfo stopped = wire(json(j)).get<JobInfo>();
  EXPECT_EQ(stopped.status, JobStatus::kStopped);
  EXPECT_EQ(stopped.stopped_by, "policy:divergence");
  EXPECT_EQ(stopped.stop_reason, "loss is NaN");
}

TEST(Messages, TelemetryKeepsNaNAsUnknown) {
  plugin::TelemetryPoint p;
  p.step = 3;
  p.loss = 0.5;
  p.flags = plugin::kTelemetryEval;
  TelemetryBatch b{"h1", 2, {p}, {{7, "out of range"}}};
  const TelemetryBatch back = wire(json(b)).get<TelemetryBatch>();
  ASSERT_EQ(back.points.size(), 1u);
  EXPECT_EQ(back.points[0].loss, 0.5);
  EXPECT_TRUE(std::isnan(back.points[0].val_loss));
  EXPECT_EQ(back.points[0].flags, plugin::kTelemetryEval);
  EXPECT_EQ(back.missed, 2u);
  ASSERT_EQ(back.refusals.size(), 1u);
  EXPECT_EQ(back.refusals[0].reason, "out of range");
}

TEST(Messages, ConfigMessagesRoundTrip) {
  const ConfigInfo info{"j",
                        3,
                        {{"training/optimizer/learning_rate", 1.0}},
                        {"training"},
                        AppliedConfig{3, 10, 12, "h1", 5, 6, 0}};
  const ConfigInfo back = wire(json(info)).get<ConfigInfo>();
  EXPECT_EQ(json(back), json(info));
  // 1.0 stays a float on the wire.
  EXPECT_TRUE(std::holds_alternative<double>(back.values.at("training/optimizer/learning_rate")));

  AuditRecord r;
  r.seq = 9;
  r.revision = 3;
  r.actor = "human:ana";
  r.path = "training/optimizer/learning_rate";
  r.old_value = 0.1;
  r.new_value = 0.2;
  r.accepted = false;
  r.refusal = "frozen";
  EXPECT_EQ(json(wire(json(AuditLog{{r}})).get<AuditLog>()), json(AuditLog{{r}}));

  ConfigWriteRequest w{"plateau", {{"training/optimizer/learning_rate", 0.05}}, "plateau"};
  const ConfigWriteRequest wb = wire(json(w)).get<ConfigWriteRequest>();
  EXPECT_EQ(wb.policy, "plateau");
  EXPECT_EQ(wb.writes, w.writes);
  EXPECT_EQ(wb.decided_from, 0u);
  w.decided_from = 41;
  EXPECT_EQ(wire(json(w)).get<ConfigWriteRequest>().decided_from, 41u);
  json bad = json(w);
  bad["decided_from"] = -1;
  EXPECT_THROW(bad.get<ConfigWriteRequest>(), std::invalid_argument);
}

TEST(Messages, EveryStreamMessageRoundTrips) {
  const std::vector<StreamMessage> all = {
      StreamMessage::snapshot(4, {{"a/b", std::int64_t{1}}}, {"a"}),
      StreamMessage::resume({"x/y"}),
      StreamMessage::delta(5, "policy:p", {{"a/b", 2.5}}),
      StreamMessage::freeze("a", true),
      StreamMessage::freeze("a", false),
      StreamMessage::keepalive(5),
  };
  for (const StreamMessage& m : all) {
    const json j = wire(json(m));
    const StreamMessage back = j.get<StreamMessage>();
    EXPECT_EQ(back.type, m.type) << j;
    EXPECT_EQ(json(back), j);
  }
  EXPECT_EQ(json(StreamMessage::keepalive(5)), json::parse(R"({"type":"keepalive","revision":5})"));
  EXPECT_THROW((json{{"type", "gossip"}}.get<StreamMessage>()), std::invalid_argument);
}

TEST(Messages, ArtifactAndManifestRepliesRoundTrip) {
  const UploadReply u = wire(json(UploadReply{"d", 10, true})).get<UploadReply>();
  EXPECT_TRUE(u.deduplicated);
  EXPECT_EQ(u.size, 10u);
  const auto list = wire(json(ArtifactList{{{"b", "d", 1, 2}}})).get<ArtifactList>().artifacts;
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].uploaded_at, 2);
  const ReloadReply r =
      wire(json(ReloadReply{true, {"a"}, {}, {"z"}, 0, {{"a", "id2", {"id1"}}}, {"w"}}))
          .get<ReloadReply>();
  EXPECT_TRUE(r.dry_run);
  EXPECT_EQ(r.removed, std::vector<std::string>{"z"});
  ASSERT_EQ(r.replaced.size(), 1u);
  EXPECT_EQ(r.replaced[0].id, "id2");
  EXPECT_EQ(r.replaced[0].replaces, std::vector<std::string>{"id1"});
  EXPECT_EQ(r.warnings, std::vector<std::string>{"w"});
  // From a coordinator that predates `replaced`: none.
  EXPECT_TRUE(json({{"dry_run", false},
                    {"added", json::array()},
                    {"unchanged", json::array()},
                    {"removed", json::array()},
                    {"written", 0}})
                  .get<ReloadReply>()
                  .replaced.empty());
  const ErrorReply e = error_reply_from_json(
      wire(json(ErrorReply{"invalid manifest", 400, {"m.toml:1: bad"}})), 400, "");
  EXPECT_EQ(e.diagnostics, std::vector<std::string>{"m.toml:1: bad"});
  EXPECT_EQ(error_reply_from_json(json("not an object"), 502, "bad gateway").error, "bad gateway");
}

}  // namespace
}  // namespace tv::fleet::api
