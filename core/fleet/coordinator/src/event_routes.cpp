// The dashboard's push channel (GET kEvents; its protocol is in api/events.hpp). Each connection
// is one EventSession on a thread of its own (the server's WebSocket sessions, capped by
// max_websocket_sessions): it polls the stores every kEventTick for what its client subscribed
// to and sends what changed. A send only queues (the server writes), so a client that reads
// slowly holds up nobody else: it is cut off once its queue is full. Events connections take at
// most half of max_websocket_sessions (503 beyond).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <map>

#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/events.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The fleet's summaries are read every this many ticks (a second): a list of every job costs
// more than one job's new points.
constexpr int kFleetEveryTicks = 4;
// The most audit entries one config message carries.
constexpr std::size_t kAuditPerMessage = 100;
// How far back a job's summary looks for its newest evaluation (see latest_metrics).
constexpr std::size_t kSummaryPoints = 128;

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Origin absent (not a browser) or this server's own; anything else is another site's page.
Response events_admission(const CoordinatorState& s, const Request& req) {
  const std::string origin = req.header("origin");
  if (!origin.empty()) {
    const bool tls = !s.options.http.tls_cert_file.empty();
    const std::string own = std::string(tls ? "https://" : "http://") + req.header("host");
    if (lowercase(origin) != lowercase(own)) {
      return Response::error(403, "origin '" + origin + "' is not this server's (" + own +
                                      "): the events channel serves this coordinator's own "
                                      "dashboard only");
    }
  }
  Response ok;
  ok.status = 101;
  return ok;
}

// Why the session closes the channel (code 1008), thrown from where the client went wrong.
struct Refused {
  std::string reason;
};

json parse_message(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Refused{"a message must be a JSON object"};
  return j;
}

std::string text_field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string() || it->get<std::string>().empty())
    throw Refused{std::string("'") + key + "' must be a non-empty string"};
  return *it;
}

std::int64_t int_field(const json& j, const char* key, std::int64_t lo) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<std::int64_t>() < lo)
    throw Refused{std::string("'") + key + "' must be a whole number from " + std::to_string(lo)};
  return *it;
}

class EventSession {
 public:
  EventSession(CoordinatorState& s, http::WebSocketSession& ws) : s_(s), ws_(ws) {}

  void run() {
    try {
      if (!s_.reads_public && !await_hello()) return;
      send({{"type", "ready"}, {"public_reads", s_.reads_public}});
      loop();
    } catch (const Refused& r) {
      ws_.close(r.reason);
    }
  }

 private:
  struct JobWatch {
    std::int64_t after_step = -1;
    std::uint64_t after_seq = 0;
    std::uint64_t log_seq = 0;  // the log tail last sent (JobLogs::Tail::seq)
  };

  bool await_hello() {
    const auto limit = s_.options.http.head_timeout;
    const std::optional<std::string> text = ws_.receive(limit);
    if (!text) {
      if (ws_.open())
        ws_.close("no hello with a read_token within " + std::to_string(limit.count()) + " ms");
      return false;
    }
    const json j = parse_message(*text);
    if (j.value("type", json()) != "hello")
      throw Refused{"the first message must be a hello with a read_token: reads are not public"};
    if (!reader_token(text_field(j, "read_token"))) throw Refused{"hello: wrong read_token"};
    return true;
  }

  bool reader_token(const std::string& t) const {
    const CoordinatorOptions& o = s_.options;
    for (const std::string* known : {&o.read_token, &o.operator_token, &o.worker_token}) {
      if (!known->empty() && http::tokens_equal(t, *known)) return true;
    }
    return false;
  }

  void loop() {
    auto next_tick = Clock::now();
    while (ws_.open()) {
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now());
      if (auto text = ws_.receive(std::max(wait, std::chrono::milliseconds(1)))) {
        handle(*text);
        continue;
      }
      if (Clock::now() < next_tick) continue;
      push();
      next_tick = Clock::now() + api::kEventTick;
      if (Clock::now() - last_sent_ >= api::kEventKeepalive) send({{"type", "keepalive"}});
    }
  }

  void handle(const std::string& text) {
    const json j = parse_message(text);
    const std::string type = text_field(j, "type");
    if (type == "hello") return;  // reads are public, or the client said it twice
    if (type != "subscribe" && type != "unsubscribe")
      throw Refused{"unknown message type '" + type + "' (hello, subscribe, unsubscribe)"};
    const bool on = type == "subscribe";
    if (j.contains("fleet")) {
      fleet_ = on;
      if (on) send({{"type", "subscribed"}, {"fleet", true}});
      return;
    }
    const std::string job = text_field(j, "job");
    if (on) return subscribe(job, j);
    jobs_.erase(job);
  }

  void subscribe(const std::string& job, const json& j) {
    if (!s_.queue.get(job)) return error(no_such_job(job));
    if (!jobs_.count(job) && jobs_.size() >= api::kEventMaxJobs) {
      return error("job " + job + ": a connection subscribes to at most " +
                   std::to_string(api::kEventMaxJobs) + " jobs");
    }
    JobWatch w;
    if (j.contains("after_step")) {
      w.after_step = int_field(j, "after_step", -1);
    } else if (const auto a = s_.telemetry.applied(job)) {
      w.after_step = static_cast<std::int64_t>(a->last_step);
    }
    if (j.contains("after_seq"))
      w.after_seq = static_cast<std::uint64_t>(int_field(j, "after_seq", 0));
    JobWatch& watch = jobs_[job] = w;
    send({{"type", "subscribed"},
          {"job", job},
          {"after_step", w.after_step},
          {"after_seq", w.after_seq}});
    push_log(job, watch);  // the tail there is now: the log view starts full
  }

  void push() {
    if (fleet_ && tick_++ % kFleetEveryTicks == 0) {
      for (const JobRow& row : s_.queue.list())
        push_job(row);
      push_workers();
    } else if (!fleet_) {
      for (const auto& [id, w] : jobs_) {
        if (const auto row = s_.queue.get(id)) push_job(*row);
      }
    }
    for (auto& [id, w] : jobs_) {
      push_points(id, w);
      push_config(id, w);
      push_log(id, w);
    }
  }

  // The newest point's step, epoch, loss and learning rate, with the newest evaluation among the
  // last kSummaryPoints points: most points are training steps, whose val_accuracy is unknown.
  json latest_metrics(const std::string& id) const {
    const NewPoints newest = s_.telemetry.points_after(id, -1, kSummaryPoints);
    if (newest.points.empty()) return nullptr;
    const plugin::TelemetryPoint& p = newest.points.back();
    double val_accuracy = p.val_accuracy;
    for (auto it = newest.points.rbegin(); it != newest.points.rend() && std::isnan(val_accuracy);
         ++it)
      val_accuracy = it->val_accuracy;
    return {{"step", p.step},
            {"epoch", p.epoch},
            {"loss", p.loss},
            {"val_accuracy", val_accuracy},
            {"learning_rate", p.learning_rate}};
  }

  json job_summary(const JobRow& row) const {
    const std::string& id = row.spec.id;
    const std::optional<AppliedConfig> applied = s_.applied(id);
    json last = nullptr;
    if (applied) last = latest_metrics(id);
    const auto desired = s_.desired_revision(id);
    const auto heartbeat = row.heartbeat_ms;
    return {{"id", id},
            {"name", row.spec.name},
            {"status", to_string(row.status)},
            {"attempt", row.attempt},
            {"worker", row.worker},
            {"heartbeat_ms", heartbeat ? json(*heartbeat) : json(nullptr)},
            {"updated_ms", row.updated_ms},
            {"desired_revision", desired ? json(*desired) : json(nullptr)},
            {"applied_revision", applied ? json(applied->revision) : json(nullptr)},
            {"last", std::move(last)}};
  }

  void push_job(const JobRow& row) {
    json summary = job_summary(row);
    std::string& sent = sent_jobs_[row.spec.id];
    std::string text = summary.dump();
    if (text == sent) return;
    sent = std::move(text);
    send({{"type", "job"}, {"job", std::move(summary)}});
  }

  void push_workers() {
    for (const WorkerRow& w : s_.queue.workers()) {
      json info = api::WorkerInfo{w.name, w.capability, w.registered_ms, w.last_seen_ms};
      std::string& sent = sent_workers_[w.name];
      std::string text = info.dump();
      if (text == sent) continue;
      sent = std::move(text);
      send({{"type", "worker"}, {"worker", std::move(info)}});
    }
  }

  void push_points(const std::string& job, JobWatch& w) {
    const NewPoints fresh =
        s_.telemetry.points_after(job, w.after_step, api::kEventPointsPerMessage);
    if (fresh.points.empty()) return;
    w.after_step = static_cast<std::int64_t>(fresh.points.back().step);
    json points = json::array();
    for (const plugin::TelemetryPoint& p : fresh.points)
      points.push_back(telemetry_point_json(p));
    send({{"type", "telemetry"},
          {"job", job},
          {"points", std::move(points)},
          {"truncated", fresh.truncated}});
  }

  void push_config(const std::string& job, JobWatch& w) {
    const std::vector<AuditEntry> entries = s_.hub.audit(job, w.after_seq, kAuditPerMessage);
    if (entries.empty()) return;
    w.after_seq = entries.back().seq;
    const auto desired = s_.desired_revision(job);
    send({{"type", "config"},
          {"job", job},
          {"revision", desired ? json(*desired) : json(nullptr)},
          {"entries", entries}});
  }

  // The whole tail, when a newer one arrived: the client replaces its view.
  void push_log(const std::string& job, JobWatch& w) {
    const auto tail = s_.logs.get(job);
    if (!tail || tail->seq == w.log_seq) return;
    w.log_seq = tail->seq;
    json message = tail->log;
    message["type"] = "log";
    send(message);
  }

  void error(const std::string& message) { send({{"type", "error"}, {"message", message}}); }

  void send(const json& message) {
    ws_.send(message.dump());
    last_sent_ = Clock::now();
  }

  CoordinatorState& s_;
  http::WebSocketSession& ws_;
  bool fleet_ = false;
  int tick_ = 0;
  std::map<std::string, JobWatch> jobs_;
  std::map<std::string, std::string> sent_jobs_;     // the summary last sent, by job
  std::map<std::string, std::string> sent_workers_;  // likewise by worker
  Clock::time_point last_sent_ = Clock::now();
};

}  // namespace

void add_event_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  // Dashboards get half the server's WebSocket sessions at most, so that unauthenticated
  // connections waiting for their hello never keep host agents from their config streams.
  const std::size_t cap = std::max<std::size_t>(1, s.options.http.max_websocket_sessions / 2);
  auto open = std::make_shared<std::atomic<std::size_t>>(0);
  http::Route events{"GET", std::string(api::kEvents), [&s, cap, open](Request& req, BodyStream*) {
                       if (open->load() >= cap) {
                         return Response::error(
                             503, "too many events connections (" + std::to_string(cap) + ")");
                       }
                       return events_admission(s, req);
                     }};
  events.session = [&s, open](const Request&, http::WebSocketSession& ws) {
    ++*open;
    struct Leave {
      std::atomic<std::size_t>& n;
      ~Leave() { --n; }
    } leave{*open};
    const metrics::GaugeHold counted(s.metrics.event_connections);
    EventSession(s, ws).run();
  };
  events.client_messages = true;
  r.push_back(std::move(events));
}

}  // namespace tv::fleet::coordinator
