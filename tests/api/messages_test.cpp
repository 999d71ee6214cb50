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
  const ClaimRequest req = claim_request_from_json(wire(to_json(ClaimRequest{"h1", cap})));
  EXPECT_EQ(req.worker, "h1");
  EXPECT_EQ(capability_json(req.capability), capability_json(cap));

  const ClaimReply none = claim_reply_from_json(wire(to_json(ClaimReply{})));
  EXPECT_FALSE(none.job);
  const ClaimReply some =
      claim_reply_from_json(wire(to_json(ClaimReply{sample_spec(), 2, "tok", 99})));
  ASSERT_TRUE(some.job);
  EXPECT_EQ(some.job->name, "cnn-a");
  EXPECT_EQ(some.attempt, 2);
  EXPECT_EQ(some.lease_token, "tok");
  EXPECT_EQ(some.lease_expires_ms, 99);

  const HeartbeatReply h = heartbeat_reply_from_json(wire(to_json(HeartbeatReply{true, 5})));
  EXPECT_TRUE(h.cancel_requested);
  EXPECT_EQ(h.lease_expires_ms, 5);
  const CompleteRequest c = complete_request_from_json(wire(to_json(CompleteRequest{"tok", "d"})));
  EXPECT_EQ(c.artifact, "d");
  EXPECT_FALSE(complete_request_from_json(wire(to_json(CompleteRequest{"tok", {}}))).artifact);
  const FailRequest f =
      fail_request_from_json(wire(to_json(FailRequest{"tok", FailureClass::kHostLost, "gone"})));
  EXPECT_EQ(f.failure, FailureClass::kHostLost);
  EXPECT_EQ(f.reason, "gone");
}

TEST(Messages, RequestsWithAMissingOrBadFieldAreRefusedByName) {
  EXPECT_THROW(
      {
        try {
          lease_request_from_json(json::object());
        } catch (const std::invalid_argument& e) {
          EXPECT_STREQ(e.what(), "missing field 'lease_token' (a non-empty string)");
          throw;
        }
      },
      std::invalid_argument);
  EXPECT_THROW(claim_request_from_json({{"worker", "w"}}), std::invalid_argument);
  EXPECT_THROW(fail_request_from_json({{"lease_token", "t"}, {"class", "boom"}}),
               std::invalid_argument);
  EXPECT_THROW(config_write_request_from_json({{"writes", json::object()}}), std::invalid_argument);
}

TEST(Messages, JobInfoRoundTripsWithItsConfigLag) {
  JobInfo j;
  j.spec = sample_spec();
  j.status = JobStatus::kRunning;
  j.attempt = 1;
  j.worker = "h1";
  j.claimed_ms = 10;
  j.config = {std::uint64_t{4}, std::nullopt};
  const JobInfo back = job_list_from_json(wire(to_json(std::vector<JobInfo>{j}))).at(0);
  EXPECT_EQ(to_json(back), to_json(j));
  EXPECT_EQ(back.status, JobStatus::kRunning);
  EXPECT_EQ(back.config.desired_revision, 4u);
  EXPECT_FALSE(back.config.applied_revision);
  EXPECT_FALSE(back.finished_ms);
}

TEST(Messages, TelemetryKeepsNaNAsUnknown) {
  plugin::TelemetryPoint p;
  p.step = 3;
  p.loss = 0.5;
  p.flags = plugin::kTelemetryEval;
  TelemetryBatch b{"h1", 2, {p}, {{7, "out of range"}}};
  const TelemetryBatch back = telemetry_batch_from_json(wire(to_json(b)));
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
  const ConfigInfo back = config_info_from_json(wire(to_json(info)));
  EXPECT_EQ(to_json(back), to_json(info));
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
  EXPECT_EQ(to_json(audit_log_from_json(wire(to_json(std::vector<AuditRecord>{r})))),
            to_json(std::vector<AuditRecord>{r}));

  ConfigWriteRequest w{"plateau", {{"training/optimizer/learning_rate", 0.05}}, "plateau"};
  const ConfigWriteRequest wb = config_write_request_from_json(wire(to_json(w)));
  EXPECT_EQ(wb.policy, "plateau");
  EXPECT_EQ(wb.writes, w.writes);
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
    const json j = wire(to_json(m));
    const StreamMessage back = stream_message_from_json(j);
    EXPECT_EQ(back.type, m.type) << j;
    EXPECT_EQ(to_json(back), j);
  }
  EXPECT_EQ(to_json(StreamMessage::keepalive(5)),
            json::parse(R"({"type":"keepalive","revision":5})"));
  EXPECT_THROW(stream_message_from_json({{"type", "gossip"}}), std::invalid_argument);
}

TEST(Messages, ArtifactAndManifestRepliesRoundTrip) {
  const UploadReply u = upload_reply_from_json(wire(to_json(UploadReply{"d", 10, true})));
  EXPECT_TRUE(u.deduplicated);
  EXPECT_EQ(u.size, 10u);
  const auto list =
      artifact_list_from_json(wire(to_json(std::vector<ArtifactInfo>{{"b", "d", 1, 2}})));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].uploaded_at, 2);
  const ReloadReply r =
      reload_reply_from_json(wire(to_json(ReloadReply{true, {"a"}, {}, {"z"}, 0})));
  EXPECT_TRUE(r.dry_run);
  EXPECT_EQ(r.removed, std::vector<std::string>{"z"});
  const ErrorReply e = error_reply_from_json(
      wire(to_json(ErrorReply{"invalid manifest", 400, {"m.toml:1: bad"}})), 400, "");
  EXPECT_EQ(e.diagnostics, std::vector<std::string>{"m.toml:1: bad"});
  EXPECT_EQ(error_reply_from_json(json("not an object"), 502, "bad gateway").error, "bad gateway");
}

}  // namespace
}  // namespace tv::fleet::api
