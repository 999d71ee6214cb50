// The `ensemble` trigger: combines member triggers (any trigger plugin, another ensemble
// included) by votes.
//
// Every member observes every batch. A member's firing raises its vote; a raised vote stays
// raised until the ensemble fires. The ensemble fires at the row where the raised votes first
// satisfy the mode (any: one vote, all: every member's, at_least: n of them); then every vote
// drops. Members that fire at the same row vote together. The ensemble makes one evaluation at
// each row where a member made one: its reason and stats carry the members' (each prefixed by
// the member's name) and the vote count.
//
// The ensemble refuses, before any member sees it, every batch a trigger may refuse (a shape
// that does not add up, time going back, dims changing, a non-finite feature), so that members
// only refuse what their own parameters rule out. Should a member refuse a batch after the
// members before it observed it, the members no longer see the same stream: the ensemble then
// refuses every later batch with that member's reason.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/batch_check.hpp"
#include "common/plugin_params.hpp"
#include "common/trigger_plugin_for.hpp"
#include "ensemble/member_list.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::triggers {
namespace {

struct Member {
  std::string label;  // the plugin's name, or name#position when the ensemble has it twice
  std::unique_ptr<plugin::Trigger> trigger;
};

// The labels of `specs`: a plugin named once is its name; one named twice or more gets its
// 1-based position in the list ("time#1", "time#3") so that its stats stay apart.
std::vector<std::string> member_labels(const std::vector<MemberSpec>& specs) {
  std::map<std::string, int> uses;
  for (const MemberSpec& spec : specs)
    ++uses[spec.plugin];
  std::vector<std::string> labels;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    labels.push_back(uses[specs[i].plugin] > 1 ? specs[i].plugin + "#" + std::to_string(i + 1)
                                               : specs[i].plugin);
  }
  return labels;
}

class EnsembleTrigger final : public plugin::Trigger {
 public:
  struct Settings {
    std::string members;
    std::string mode;
    std::int64_t n = 0;
  };

  static plugin::Descriptor descriptor() {
    return trigger_descriptor(
        "ensemble", "fires when any, all or at least n of its member triggers have fired",
        {plugin_params::text_param(
             "members", "data_count(every=1000); time(every_s=86400)",
             "the member triggers, separated by ';', each a trigger plugin's name with its "
             "parameters: name(key=value, ...); a value with , ; ( ) = or spaces goes in double "
             "quotes"),
         plugin_params::choice_param(
             "mode", "any", {"any", "all", "at_least"},
             "how many raised votes fire the ensemble: any (one), all (every member), at_least "
             "(n); a member's firing raises its vote until the ensemble fires"),
         plugin_params::integer_param(
             "n", 2, 1, 1024,
             "votes needed with mode=at_least (at most the number of members); unused otherwise")});
  }

  static Settings read_settings(plugin_params::ParamReader& in) {
    return {in.text("members"), in.text("mode"), in.integer("n")};
  }

  static std::unique_ptr<plugin::Trigger> make(const Settings& settings,
                                               const plugin::TriggerServices& services,
                                               std::string& error) {
    MemberListParser parser(settings.members);
    const auto specs = parser.parse();
    if (!specs) {
      error = "parameter 'members': " + parser.error();
      return nullptr;
    }
    std::size_t needed = 1;
    if (settings.mode == "all") needed = specs->size();
    if (settings.mode == "at_least") {
      needed = static_cast<std::size_t>(settings.n);
      if (needed > specs->size()) {
        error = "parameter 'n': " + std::to_string(needed) + " votes needed but 'members' names " +
                std::to_string(specs->size());
        return nullptr;
      }
    }
    const std::vector<std::string> labels = member_labels(*specs);
    std::vector<Member> members;
    for (std::size_t i = 0; i < specs->size(); ++i) {
      const MemberSpec& spec = (*specs)[i];
      std::string member_error;
      auto trigger = services.create_trigger(spec.plugin, spec.params, member_error);
      if (!trigger) {
        error = "parameter 'members': member " + std::to_string(i + 1) + " ('" + spec.plugin +
                "'): " + member_error;
        return nullptr;
      }
      members.push_back({labels[i], std::move(trigger)});
    }
    return std::make_unique<EnsembleTrigger>(std::move(members), needed, settings.mode);
  }

  EnsembleTrigger(std::vector<Member> members, std::size_t needed, std::string mode)
      : members_(std::move(members)),
        votes_(members_.size(), false),
        needed_(needed),
        mode_(std::move(mode)) {}

  bool observe(const plugin::SampleBatch& batch, plugin::TriggerDecision& decision,
               std::string& error) override {
    if (broken_) {
      error = *broken_;
      return false;
    }
    auto problem = cursor_.check(batch);
    if (!problem) problem = non_finite_feature(batch);
    if (problem) {
      error = *problem;
      return false;
    }
    std::vector<plugin::TriggerDecision> seen(members_.size());
    for (std::size_t i = 0; i < members_.size(); ++i) {
      std::string member_error;
      const bool accepted = members_[i].trigger->observe(batch, seen[i], member_error);
      bool ok = accepted;
      for (const plugin::TriggerEvaluation& e : seen[i].evaluations) {
        if (e.row >= batch.rows) {
          ok = false;
          member_error = "it evaluated row " + std::to_string(e.row) + " of a batch of " +
                         std::to_string(batch.rows) + " rows";
        }
      }
      if (ok) continue;
      error = "member '" + members_[i].label + "': " + member_error;
      // A refusal by the first member left every member as it was; a later one's, or a member
      // that took the batch but answered nonsense, did not.
      if (i > 0 || accepted) {
        broken_ = error +
                  " (the members no longer see the same stream, so this ensemble refuses every "
                  "further batch)";
        error = *broken_;
      }
      return false;
    }
    cursor_.commit(batch);
    count_votes(batch, seen, decision);
    return true;
  }

 private:
  using RowEvaluations = std::vector<std::pair<std::size_t, const plugin::TriggerEvaluation*>>;

  void count_votes(const plugin::SampleBatch& batch,
                   const std::vector<plugin::TriggerDecision>& seen,
                   plugin::TriggerDecision& decision) {
    std::map<std::size_t, RowEvaluations> by_row;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      for (const plugin::TriggerEvaluation& e : seen[i].evaluations)
        by_row[e.row].emplace_back(i, &e);
    }
    for (const auto& [row, evaluations] : by_row) {
      for (const auto& [member, e] : evaluations) {
        if (e->fired) votes_[member] = true;
      }
      std::size_t raised = 0;
      for (const bool vote : votes_)
        raised += vote ? 1 : 0;
      const bool fired = raised >= needed_;
      decision.evaluations.push_back(
          evaluation(row, batch.time_ns[row], evaluations, raised, fired));
      if (fired) votes_.assign(votes_.size(), false);
    }
  }

  plugin::TriggerEvaluation evaluation(std::size_t row, std::int64_t time_ns,
                                       const RowEvaluations& evaluations, std::size_t raised,
                                       bool fired) const {
    std::string voters;
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (votes_[i]) voters += (voters.empty() ? "" : ", ") + members_[i].label;
    }
    plugin::TriggerEvaluation out;
    out.row = row;
    out.time_ns = time_ns;
    out.fired = fired;
    out.reason = std::string(fired ? "fires" : "waits") + ": " + std::to_string(raised) + " of " +
                 std::to_string(members_.size()) + " members voted (" +
                 (voters.empty() ? "none" : voters) + "), " + std::to_string(needed_) +
                 " needed (" + mode_ + ") |";
    out.stats = {{"votes", static_cast<double>(raised)},
                 {"votes_needed", static_cast<double>(needed_)}};
    const char* separator = " ";
    for (const auto& [member, e] : evaluations) {
      const std::string& label = members_[member].label;
      out.reason += separator + label + ": " + e->reason;
      separator = "; ";
      out.stats.push_back({label + ".fired", e->fired ? 1.0 : 0.0});
      for (const plugin::TriggerStat& stat : e->stats)
        out.stats.push_back({label + "." + stat.name, stat.value});
    }
    return out;
  }

  std::vector<Member> members_;
  std::vector<bool> votes_;
  std::size_t needed_;
  std::string mode_;
  StreamCursor cursor_{true};
  std::optional<std::string> broken_;
};

}  // namespace
}  // namespace tv::triggers

TRAINVISOR_PLUGIN(tv::triggers::TriggerPluginFor<tv::triggers::EnsembleTrigger>)
