import { ChannelsSection } from "../components/settings/Channels";
import { KeysSection } from "../components/settings/Keys";
import { PricesSection } from "../components/settings/Prices";

/** API keys, notification channels and model prices, managed through their APIs
 * (/api/v1/keys, /api/v1/alerts/channels, /api/v1/prices). */
export function SettingsPage() {
  return (
    <div className="page" data-testid="page-settings">
      <div className="page-head">
        <h1>Settings</h1>
      </div>
      <KeysSection />
      <ChannelsSection />
      <PricesSection />
    </div>
  );
}
