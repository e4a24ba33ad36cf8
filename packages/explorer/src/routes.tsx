/**
 * The explorer's pages. A new page is one file in pages/ and one line here (and a tab in NAV if it
 * has one); the order matters only where two patterns could match the same path.
 */
import type { ReactNode } from 'react';
import { ChipIcon, CubeIcon, PickIcon, PulseIcon, ShieldIcon, StoreIcon } from './components/icons';
import { AccountPage } from './pages/Account';
import { BlockPage } from './pages/Block';
import { BlocksPage } from './pages/Blocks';
import { ChipPage } from './pages/Chip';
import { ChipsPage } from './pages/Chips';
import { LeasePage, OfferPage } from './pages/Lease';
import { MinerPage } from './pages/Miner';
import { Overview } from './pages/Overview';
import { MarketplacePage } from './pages/Poci';
import { SearchPage } from './pages/Search';
import { TxPage } from './pages/Tx';
import { ValidatorsPage } from './pages/Validators';
import type { RouteDef } from './router';

export const ROUTES: RouteDef[] = [
  { pattern: '/', page: Overview, section: 'overview' },
  { pattern: '/blocks', page: BlocksPage, section: 'blocks' },
  { pattern: '/blocks/:from', page: BlocksPage, section: 'blocks' },
  { pattern: '/block/:ref', page: BlockPage, section: 'blocks' },
  { pattern: '/tx/:hash', page: TxPage, section: 'blocks' },
  { pattern: '/account/:address', page: AccountPage, section: 'accounts' },
  { pattern: '/search/:q', page: SearchPage, section: '' },
  { pattern: '/chips', page: ChipsPage, section: 'chips' },
  { pattern: '/chip/:id', page: ChipPage, section: 'chips' },
  { pattern: '/validators', page: ValidatorsPage, section: 'validators' },
  { pattern: '/market', page: MarketplacePage, section: 'market' },
  { pattern: '/lease/:id', page: LeasePage, section: 'market' },
  { pattern: '/offer/:id', page: OfferPage, section: 'market' },
  { pattern: '/miner', page: MinerPage, section: 'miner' },
];

export const NAV: { section: string; path: string; label: string; icon: ReactNode; soon?: boolean }[] = [
  { section: 'overview', path: '/', label: 'Overview', icon: <PulseIcon size={16} /> },
  { section: 'blocks', path: '/blocks', label: 'Blocks', icon: <CubeIcon size={16} /> },
  { section: 'chips', path: '/chips', label: 'Chips', icon: <ChipIcon size={16} /> },
  { section: 'validators', path: '/validators', label: 'Validators', icon: <ShieldIcon size={16} /> },
  { section: 'market', path: '/market', label: 'Marketplace', icon: <StoreIcon size={16} /> },
  { section: 'miner', path: '/miner', label: 'Miner', icon: <PickIcon size={16} /> },
];
