"""Word pools for realistic Chinese names, addresses and enterprise names (生成用词库).

Frequencies are rough (the common surnames first, weighted), which is all the matching
and masking code needs: many shared surnames, many shared given names, some homonyms.
"""

from __future__ import annotations

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金"
    "韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱戴严欧莫孔向汤"
)
#: Surname weights: the first ten carry about 40% of people, as in the census.
SURNAME_WEIGHTS = tuple(8.0 if i < 10 else (3.0 if i < 30 else 1.0) for i in range(len(SURNAMES)))

GIVEN_CHARS = (
    "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国文辉力鹏飞红玲志宏海波宁春梅晓东林云峰"
    "欣怡佳琪雪婷浩宇俊博子涵雨萱思睿嘉豪晨阳凯瑞鑫淑珍玉凤兵成龙亮新德永斌斌庆松彬琳颖倩露燕凤"
    "丹萍蕾薇莹晶琴慧鸿坤聪毅锋振伦贤颂贵荣发达进宝礼"
)

ETHNICITIES = ("汉族", "畲族", "回族", "满族", "苗族", "壮族", "土家族")
ETHNICITY_WEIGHTS = (0.955, 0.015, 0.008, 0.006, 0.006, 0.005, 0.005)

STREETS = (
    "中心路",
    "人民路",
    "解放路",
    "胜利路",
    "环岛西路",
    "海霞路",
    "学院路",
    "车站大道",
    "新城大道",
    "鹿城路",
    "府前街",
    "五马街",
    "公园路",
    "锦绣路",
    "温州大道",
    "瓯江路",
    "惠民路",
    "兴港路",
    "东海大道",
    "滨海路",
)
TOWNS = (
    "北岙街道",
    "东屏街道",
    "元觉街道",
    "霓屿街道",
    "大门镇",
    "鹿西乡",
    "城关镇",
    "南白象街道",
    "龙湖镇",
    "江滨街道",
)

TRADE_WORDS = (
    "海鑫",
    "瓯越",
    "东港",
    "恒达",
    "宏远",
    "华瑞",
    "嘉诚",
    "金桥",
    "联创",
    "明珠",
    "诺德",
    "启航",
    "荣盛",
    "瑞丰",
    "盛世",
    "天成",
    "万通",
    "新海",
    "鑫源",
    "亚泰",
    "永兴",
    "正泰",
    "中诚",
    "卓越",
    "海霞",
    "洞明",
)
INDUSTRIES = (
    ("科技", "软件开发；信息技术咨询服务；数据处理服务"),
    ("贸易", "日用百货、五金交电、建筑材料销售；货物进出口"),
    ("海产品", "水产品收购、加工、销售；冷藏仓储服务"),
    ("建设工程", "房屋建筑工程施工；市政公用工程施工"),
    ("旅游开发", "旅游项目开发；酒店管理；餐饮服务"),
    ("机械制造", "通用设备制造；机械零部件加工"),
    ("物流", "普通货物道路运输；仓储服务；货运代理"),
    ("电子", "电子元器件制造；电子产品销售"),
)
ENT_FORMS = (
    ("有限公司", "有限责任公司(自然人投资或控股)", "1"),
    ("股份有限公司", "股份有限公司(非上市、自然人投资或控股)", "1"),
    ("有限公司", "有限责任公司(法人独资)", "1"),
    ("专业合作社", "农民专业合作社", "3"),
)
ENT_FORM_WEIGHTS = (0.7, 0.08, 0.17, 0.05)

PROJECTS = (
    "综合楼建设项目",
    "厂房扩建项目",
    "物流仓储中心项目",
    "海岛旅游度假区项目",
    "冷链加工基地项目",
    "研发中心项目",
)
LAND_USES = ("住宅", "商业", "工业", "办公", "仓储")
RIGHT_TYPES = ("国有建设用地使用权/房屋所有权", "国有建设用地使用权", "集体土地使用权/房屋所有权")
CONCLUSIONS = ("approved", "approved_with_conditions", "rejected")
CONCLUSION_WEIGHTS = (0.7, 0.25, 0.05)
OPINIONS = {
    "approved": "项目用地符合土地利用总体规划，同意通过用地预审。",
    "approved_with_conditions": "项目用地基本符合规划，须落实耕地占补平衡后方可办理用地手续。",
    "rejected": "项目选址涉及永久基本农田，不予通过用地预审。",
}
#: the authority that issues the land-use pre-review opinions (温自然资预〔year〕N号): its unified social
#: credit code (GB 32100: 11 = organ, 330300 = 温州市, organisation code 00256798-3, check T) and name
LAND_APPROVAL_ISSUER = ("11330300002567983T", "温州市自然资源和规划局")
